import { Worker } from 'node:worker_threads';

/**
 * Starts one of the store's threads from its module beside this file. Under the TypeScript sources
 * (tests) the thread bootstraps tsx first; the built service runs the compiled JavaScript directly.
 */
export function spawnThread(module: 'writer-thread' | 'reader-thread', workerData: unknown): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const url = new URL(`./${module}.ts`, here).href;
    const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url)}); })`;
    return new Worker(boot, { eval: true, workerData });
  }
  return new Worker(new URL(`./${module}.js`, here), { workerData });
}
