/**
 * Images per second per core for each committed model, in process and remote, with the image
 * preparation (sharp toTensor) measured apart from inference. Bounded: about 2 s per figure.
 *
 *   node --import tsx bench/imaging.ts [--seconds S] [--batch N]
 *
 * - prepare: SharpImageDecoder.toTensor, one image at a time, libvips limited to 1 thread
 *   (sharp.concurrency(1)), on generated JPEG/PNG images of 40-260 px a side;
 * - in process: OnnxModelRuntime (intra-op threads 1), one call at a time, batch 1 and batch N;
 * - remote: the repo's model server in a child process (`agenticpet model-server`, threads 1) on
 *   a loopback port, reached by KServeModelRuntime, one request in flight, batch 1 and batch N;
 *   inputs as raw bytes (the binary tensor extension, the client's default) and as JSON numbers.
 * "per core" = images / CPU seconds spent (this process's CPU time in process; for remote, the
 * client's plus the server's, read from /proc/<pid>/stat), beside the wall-clock rate. Nothing
 * here is an HTTP load test of the API.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { ImageInputSpec, ModelRef, ModelRuntime, Tensor } from '../src/clinical/ports.js';
import { KServeModelRuntime } from '../src/imaging/kserve-client.js';
import { discoverModels } from '../src/imaging/model-server.js';
import { OnnxModelRuntime } from '../src/imaging/onnx-runtime.js';
import { SharpImageDecoder } from '../src/imaging/sharp-decoder.js';
import { generate } from '../scripts/models/image-kind-data.js';
import { stack } from '../scripts/models/image-kind-eval.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const modelsDir = path.join(root, 'models');
const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' }, batch: { type: 'string', default: '16' } } });
const seconds = Number(values.seconds);
const batchSize = Number(values.batch);
sharp.concurrency(1);

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
/** utime + stime of another process, seconds (Linux). */
function cpuOf(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Figure {
  what: string;
  images: number;
  wallPerSecond: number;
  perCoreSecond: number;
  p50Ms: number;
  p99Ms: number;
}

async function measure(what: string, imagesPerCall: number, call: () => Promise<unknown>, otherCpu: () => number = () => 0): Promise<Figure> {
  for (let i = 0; i < 5; i++) await call();
  const lat: number[] = [];
  const c0 = cpuNow() + otherCpu();
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const s = performance.now();
    await call();
    lat.push(performance.now() - s);
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuNow() + otherCpu() - c0;
  lat.sort((a, b) => a - b);
  const images = lat.length * imagesPerCall;
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!;
  return { what, images, wallPerSecond: images / wall, perCoreSecond: images / cpu, p50Ms: q(0.5), p99Ms: q(0.99) };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function startServer(): Promise<{ pid: number; url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli.ts'), 'model-server', '--models', modelsDir, '--port', String(port), '--host', '127.0.0.1', '--threads', '1'], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const probe = new KServeModelRuntime({ baseUrl: url });
  const deadline = Date.now() + 20_000;
  while (!(await probe.ready(500))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('the model server did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: child.pid!,
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function main(): Promise<void> {
  const decoder = new SharpImageDecoder({ maxConcurrent: 1 });
  const samples = await generate(77, Math.max(8, batchSize / 2));
  const figures: Figure[] = [];
  const server = await startServer();
  try {
    for (const ref of discoverModels(modelsDir)) {
      const card = JSON.parse(fs.readFileSync(path.join(modelsDir, ref.name, ref.version, 'card.json'), 'utf8')) as { input: ImageInputSpec };
      const spec = card.input;
      const key = `${ref.name}@${ref.version}`;
      let i = 0;
      figures.push(await measure(`${key} prepare (sharp toTensor)`, 1, () => decoder.toTensor(samples[i++ % samples.length]!.bytes, spec)));
      const tensors: Tensor[] = await Promise.all(samples.map((s) => decoder.toTensor(s.bytes, spec)));
      const one = stack([tensors[0]!]);
      const batch = stack(Array.from({ length: batchSize }, (_, k) => tensors[k % tensors.length]!));
      const runtimes: Array<[string, ModelRuntime, () => number]> = [
        ['in process', new OnnxModelRuntime({ modelsDir, intraOpThreads: 1 }), () => 0],
        ['remote binary (loopback)', new KServeModelRuntime({ baseUrl: server.url }), () => cpuOf(server.pid)],
        ['remote JSON (loopback)', new KServeModelRuntime({ baseUrl: server.url, binaryData: false }), () => cpuOf(server.pid)],
      ];
      for (const [where, runtime, other] of runtimes) {
        const infer = (t: Tensor) => () => runtime.infer(ref as ModelRef, [t], { timeoutMs: 10_000 });
        figures.push(await measure(`${key} infer ${where}, batch 1`, 1, infer(one), other));
        figures.push(await measure(`${key} infer ${where}, batch ${batchSize}`, batchSize, infer(batch), other));
        await runtime.close();
      }
    }
  } finally {
    await server.stop();
  }
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(`node ${process.version}, ${process.arch}, onnxruntime-node 1.31 CPU EP, ${seconds} s per figure, one call in flight`);
  console.log(`${pad('figure', 60)} ${pad('images', 8)} ${pad('img/s wall', 11)} ${pad('img/s per core', 15)} ${pad('p50 ms', 8)} p99 ms`);
  for (const f of figures) {
    console.log(`${pad(f.what, 60)} ${pad(String(f.images), 8)} ${pad(f.wallPerSecond.toFixed(0), 11)} ${pad(f.perCoreSecond.toFixed(0), 15)} ${pad(f.p50Ms.toFixed(3), 8)} ${f.p99Ms.toFixed(3)}`);
  }
}

await main();
