import { Type, type TSchema } from 'typebox';

/**
 * Response schemas: they document each answer in /openapi.json (with an example) and let Fastify
 * serialise it with a compiled serializer. Open objects (payloads) keep every property.
 */
export function reply(description: string, schema: TSchema, example: unknown): TSchema {
  return { ...schema, description, examples: [example] } as TSchema;
}

/** Any JSON object, kept whole. */
export const OpenObject = Type.Object({}, { additionalProperties: true });

/** A JSON object or null (a payload that may be absent). */
export const Payload = Type.Unsafe<Record<string, unknown> | null>({
  type: ['object', 'null'],
  additionalProperties: true,
  description: 'the JSON object sent, or null',
});

/** A value echoed back as the client sent it, of whatever type. */
export const AsSent = Type.Unsafe<unknown>({ description: 'as sent' });
