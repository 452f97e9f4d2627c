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
 * client's plus the server's, read from /proc/<pid>/stat), beside the wall-clock rate.
 *
 * --parts case (the default runs both): a diagnosis's imaging step as the service runs it
 * (readCaseImages: serving set, tensor cache, FsBlobStore on local disk, SharpImageDecoder with
 * its production bounds, OnnxModelRuntime) on one 256 x 256 greyscale PNG, as bench/run.ts's
 * diagnoses-image scenario attaches: uncached (AGENTICPET_IMAGE_TENSOR_CACHE_MB=0: fetch and
 * sharp every time, what every diagnosis did before the cache) against cached (a hit: inference
 * only), one in flight and 8 in flight (uncached with 8 distinct images, so the single flight
 * joins nothing). Beside the 8-in-flight runs, a probe times a setImmediate and an fs.stat every
 * millisecond: the stat's extra time is the wait a file or DNS call meets for a libuv pool thread
 * while sharp holds some (run with UV_THREADPOOL_SIZE=N to compare pool sizes). Nothing here is an HTTP load test of the API.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { readCaseImages, type CaseImagingDeps } from '../src/clinical/diagnoses/case-imaging.js';
import { ImageTensorCache } from '../src/clinical/diagnoses/image-tensor-cache.js';
import { uuidv7 } from '../src/clinical/ids.js';
import { ServingModels } from '../src/clinical/models/serving.js';
import type { ImageInputSpec, ModelRef, ModelRuntime, NewModel, RegisteredModel, Tensor } from '../src/clinical/ports.js';
import { FsBlobStore } from '../src/storage/blobs/fs.js';
import { KServeModelRuntime } from '../src/imaging/kserve-client.js';
import { discoverModels } from '../src/imaging/model-server.js';
import { OnnxModelRuntime } from '../src/imaging/onnx-runtime.js';
import { SharpImageDecoder } from '../src/imaging/sharp-decoder.js';
import { generate } from '../scripts/models/image-kind-data.js';
import { stack } from '../scripts/models/image-kind-eval.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const modelsDir = path.join(root, 'models');
const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' }, batch: { type: 'string', default: '16' }, parts: { type: 'string', default: 'models,case' } } });
const seconds = Number(values.seconds);
const batchSize = Number(values.batch);
const parts = new Set(values.parts.split(','));
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

async function modelFigures(): Promise<Figure[]> {
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
  return figures;
}

type Quantiles = { p50Ms: number; p99Ms: number };
const quantiles = (xs: number[]): Quantiles => {
  xs.sort((a, b) => a - b);
  const q = (p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
  return { p50Ms: q(0.5), p99Ms: q(0.99) };
};

/**
 * Every millisecond until stop(): a setImmediate (the event loop's delay alone), then an fs.stat
 * (the loop's delay plus the wait for a libuv pool thread); the difference is the pool's queue.
 */
function poolProbe(file: string): { stop(): Promise<string> } {
  const loopLat: number[] = [];
  const statLat: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      let s = performance.now();
      await new Promise((r) => setImmediate(r));
      loopLat.push(performance.now() - s);
      s = performance.now();
      await fs.promises.stat(file);
      statLat.push(performance.now() - s);
      await new Promise((r) => setTimeout(r, 1));
    }
  })();
  const f = (q: Quantiles) => `p50 ${q.p50Ms.toFixed(3)} ms, p99 ${q.p99Ms.toFixed(3)} ms`;
  return {
    stop: async () => {
      running = false;
      await loop;
      return `setImmediate ${f(quantiles(loopLat))}; fs.stat ${f(quantiles(statLat))} (${statLat.length} probes)`;
    },
  };
}

/** Like measure(), with `inFlight` calls kept running at once; each call's latency counts. */
async function measureInFlight(what: string, inFlight: number, call: (n: number) => Promise<unknown>): Promise<Figure> {
  let n = 0;
  for (let i = 0; i < 5; i++) await call(n++);
  const lat: number[] = [];
  const c0 = cpuNow();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() - t0 < seconds * 1000) {
        const s = performance.now();
        await call(n++);
        lat.push(performance.now() - s);
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuNow() - c0;
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!;
  return { what, images: lat.length, wallPerSecond: lat.length / wall, perCoreSecond: lat.length / cpu, p50Ms: q(0.5), p99Ms: q(0.99) };
}

/** A 256 x 256 greyscale PNG of bars and a gradient (the size bench/run.ts attaches); `shift` makes each distinct. */
function caseImage(shift: number): Promise<Buffer> {
  const side = 256;
  const px = Buffer.alloc(side * side);
  for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) px[y * side + x] = ((x + shift) % 32 < 4 || y % 48 < 4 ? 230 : 40) + ((x + y) >> 3);
  return sharp(px, { raw: { width: side, height: side, channels: 1 } }).png().toBuffer();
}

async function caseFigures(): Promise<{ figures: Figure[]; probes: string[] }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-bench-imaging-'));
  const blobs = new FsBlobStore(root);
  const clinicId = uuidv7();
  const images: Array<{ mediaId: string; sha256: string }> = [];
  for (let i = 0; i < 32; i++) {
    const bytes = await caseImage(i);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    await blobs.put(clinicId, sha256, bytes);
    images.push({ mediaId: uuidv7(), sha256 });
  }
  const registered: RegisteredModel[] = discoverModels(modelsDir).map((ref) => {
    const spec = JSON.parse(fs.readFileSync(path.join(modelsDir, ref.name, ref.version, 'registry.json'), 'utf8')) as NewModel;
    const at = new Date();
    return { ...spec, id: uuidv7(), status: 'active', canaryShare: 0, activatedAt: at, createdAt: at, updatedAt: at };
  });
  const runtime = new OnnxModelRuntime({ modelsDir, intraOpThreads: 1 });
  const decoder = new SharpImageDecoder();
  const deps = (maxBytes: number): CaseImagingDeps => ({
    serving: new ServingModels({ servingModels: async () => registered }, 3_600_000),
    runtime,
    preprocessor: decoder,
    blobs,
    tensors: new ImageTensorCache({ maxBytes }),
    budgetMs: 10_000,
  });
  const uncached = deps(0);
  const cached = deps(64 * 1024 * 1024);
  const diagnose = (d: CaseImagingDeps, image: { mediaId: string; sha256: string }) => async () => {
    const { output } = await readCaseImages(d, clinicId, [image], uuidv7());
    if (output === null || output.readings.length !== registered.length) throw new Error(`the image was not read: ${output?.warnings.join('; ')}`);
  };
  const names = registered.map((m) => `${m.name}@${m.version}`).join(', ');
  const figures: Figure[] = [];
  const probes: string[] = [];
  const probeFile = path.join(root, 'probe');
  fs.writeFileSync(probeFile, 'x');
  try {
    const idle = poolProbe(probeFile);
    await new Promise((r) => setTimeout(r, seconds * 500));
    probes.push(`probe, idle: ${await idle.stop()}`);
    figures.push(await measure(`case imaging (${names}) uncached, 1 in flight`, 1, diagnose(uncached, images[0]!)));
    figures.push(await measure(`case imaging (${names}) cached, 1 in flight`, 1, diagnose(cached, images[0]!)));
    for (const [label, d, pick] of [
      ['uncached, 8 in flight (distinct images)', uncached, (n: number) => images[n % images.length]!],
      ['cached, 8 in flight', cached, () => images[0]!],
    ] as const) {
      const probe = poolProbe(probeFile);
      figures.push(await measureInFlight(`case imaging (${names}) ${label}`, 8, (n) => diagnose(d, pick(n))()));
      probes.push(`probe beside "${label}": ${await probe.stop()}`);
    }
    probes.push(`tensor cache after the cached runs: ${JSON.stringify(cached.tensors.counts)}, ${JSON.stringify(cached.tensors.size)}`);
  } finally {
    await runtime.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
  return { figures, probes };
}

async function main(): Promise<void> {
  const figures = parts.has('models') ? await modelFigures() : [];
  const cases = parts.has('case') ? await caseFigures() : { figures: [], probes: [] };
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(`node ${process.version}, ${process.arch}, onnxruntime-node 1.31 CPU EP, ${seconds} s per figure, one call in flight unless named; UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 'unset (4)'}, sharp.concurrency ${sharp.concurrency()}, load average ${os.loadavg()[0]!.toFixed(2)}`);
  console.log(`${pad('figure', 72)} ${pad('images', 8)} ${pad('img/s wall', 11)} ${pad('img/s per core', 15)} ${pad('p50 ms', 8)} p99 ms`);
  for (const f of [...figures, ...cases.figures]) {
    console.log(`${pad(f.what, 72)} ${pad(String(f.images), 8)} ${pad(f.wallPerSecond.toFixed(0), 11)} ${pad(f.perCoreSecond.toFixed(0), 15)} ${pad(f.p50Ms.toFixed(3), 8)} ${f.p99Ms.toFixed(3)}`);
  }
  for (const line of cases.probes) console.log(line);
}

await main();
