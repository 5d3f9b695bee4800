// WebGPU kernels for the browser worker: the WGSL side of MiniLM. Python (browser_worker/minilm.py,
// in Pyodide) decides what runs; these functions only allocate buffers and enqueue dispatches.

// Each invocation computes an 8-row x 4-column block of outputs from vec4 loads, with no workgroup memory: on
// SwiftShader (no GPU here) barriers are slow, and this measured 8x faster than a 16x16 shared-memory tile. The
// block is unrolled in the generated source (constant indices, one scalar accumulator each, row and column offsets
// computed once): SwiftShader keeps those in registers, where a loop over an array did not: 5.2 GFLOP/s against 2.3
// for the same 4x4 block as loops, with bit-identical results (same summation order). K must be a multiple of 4
// (MiniLM: 384, 1536).
const LINEAR_ROWS = 8, LINEAR_COLS = 4;
const unrolled = (n, line) => Array.from({ length: n }, (_, i) => line(i)).join("\n");
const LINEAR = /* wgsl */ `
struct P { M: u32, K: u32, N: u32, act: u32 }
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> w: array<vec4f>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: P;
fn erf(v: f32) -> f32 {  // Abramowitz & Stegun 7.1.26, |error| < 1.5e-7
  let a = abs(v);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
  return sign(v) * (1.0 - poly * exp(-a * a));
}
fn store(r: u32, c: u32, acc: f32) {
  if (r >= p.M || c >= p.N) { return; }
  var v = acc + b[c];
  if (p.act == 1u) { v = 0.5 * v * (1.0 + erf(v * 0.7071067811865476)); }
  y[r * p.N + c] = v;
}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let colBlocks = (p.N + ${LINEAR_COLS - 1}u) / ${LINEAR_COLS}u;
  if (gid.x >= colBlocks * ((p.M + ${LINEAR_ROWS - 1}u) / ${LINEAR_ROWS}u)) { return; }
  let r0 = (gid.x / colBlocks) * ${LINEAR_ROWS}u;
  let c0 = (gid.x % colBlocks) * ${LINEAR_COLS}u;
  let k4 = p.K / 4u;
${unrolled(LINEAR_COLS, (j) => `  let wo${j} = min(c0 + ${j}u, p.N - 1u) * k4;`)}
${unrolled(LINEAR_ROWS, (i) => `  let xo${i} = min(r0 + ${i}u, p.M - 1u) * k4;`)}
${unrolled(LINEAR_ROWS * LINEAR_COLS, (i) => `  var a${i} = 0.0;`)}
  for (var k = 0u; k < k4; k++) {
${unrolled(LINEAR_COLS, (j) => `    let w${j} = w[wo${j} + k];`)}
${unrolled(LINEAR_ROWS, (i) => `    { let xv = x[xo${i} + k];\n` +
    unrolled(LINEAR_COLS, (j) => `      a${i * LINEAR_COLS + j} += dot(xv, w${j});`) + "\n    }")}
  }
${unrolled(LINEAR_ROWS * LINEAR_COLS, (i) => `  store(r0 + ${Math.floor(i / LINEAR_COLS)}u, c0 + ${i % LINEAR_COLS}u, a${i});`)}
}`;

// Sum of one value per invocation over a 128-wide workgroup (tree reduction), for pooling (once per pass).
const WORKGROUP_SUM = /* wgsl */ `
var<workgroup> part: array<f32, 128>;
fn total(v: f32, l: u32) -> f32 {
  part[l] = v;
  workgroupBarrier();
  for (var s = 64u; s > 0u; s >>= 1u) {
    if (l < s) { part[l] += part[l + s]; }
    workgroupBarrier();
  }
  let out = part[0];
  workgroupBarrier();
  return out;
}`;

// One invocation per row, no workgroup memory: SwiftShader's barriers made the 128-wide tree reduction cost 99 ms
// per layernorm over 864 rows (a quarter of a pass); this runs in a few ms. Two passes over the row, as PyTorch.
const LAYERNORM = /* wgsl */ `
struct P { M: u32, N: u32, residual: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> r: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: P;
fn value(i: u32) -> f32 { return select(x[i], x[i] + r[i], p.residual == 1u); }
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x >= p.M) { return; }
  let base = gid.x * p.N;
  var s = 0.0;
  for (var c = 0u; c < p.N; c++) { s += value(base + c); }
  let mean = s / f32(p.N);
  var q = 0.0;
  for (var c = 0u; c < p.N; c++) { let d = value(base + c) - mean; q += d * d; }
  let inv = inverseSqrt(q / f32(p.N) + p.eps);
  for (var c = 0u; c < p.N; c++) { y[base + c] = (value(base + c) - mean) * inv * g[c] + b[c]; }
}`;

// Rows of several sentences share one activation: seg[] holds (start, length) per sentence and rowSeg[] the
// sentence of each row, so position ids restart, attention stays within a sentence and pooling gives one row each.
// q, k and v come from the fused QKV linear: one [rows, 3H] activation, row = [q | k | v].
const ATTENTION = /* wgsl */ `
struct P { T: u32, H: u32, D: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> rowSeg: array<u32>;
@group(0) @binding(2) var<storage, read> seg: array<u32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x >= p.T * p.H) { return; }
  let i = gid.x / p.H;
  let h = gid.x % p.H;
  let width = p.H * p.D;
  let qo = i * 3u * width + h * p.D;
  let s0 = seg[2u * rowSeg[i]];
  let s1 = s0 + seg[2u * rowSeg[i] + 1u];
  var acc: array<f32, 64>;
  var m = -1e30;
  var l = 0.0;
  for (var j = s0; j < s1; j++) {  // one pass, online softmax, over this sentence's tokens only
    let ko = j * 3u * width + width + h * p.D;
    let vo = ko + width;
    var s = 0.0;
    for (var d = 0u; d < p.D; d++) { s += qkv[qo + d] * qkv[ko + d]; }
    s *= p.scale;
    let mn = max(m, s);
    let c = exp(m - mn);
    let e = exp(s - mn);
    l = l * c + e;
    for (var d = 0u; d < p.D; d++) { acc[d] = acc[d] * c + e * qkv[vo + d]; }
    m = mn;
  }
  for (var d = 0u; d < p.D; d++) { o[i * width + h * p.D + d] = acc[d] / l; }
}`;

const EMBED = /* wgsl */ `
struct P { T: u32, H: u32 }
@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> rowSeg: array<u32>;
@group(0) @binding(2) var<storage, read> seg: array<u32>;
@group(0) @binding(3) var<storage, read> word: array<f32>;
@group(0) @binding(4) var<storage, read> pos: array<f32>;
@group(0) @binding(5) var<storage, read> typ: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x >= p.T * p.H) { return; }
  let r = gid.x / p.H;
  let c = gid.x % p.H;
  let position = r - seg[2u * rowSeg[r]];  // position ids restart per sentence
  y[gid.x] = word[ids[r] * p.H + c] + pos[position * p.H + c] + typ[c];
}`;

// One workgroup per sentence: mean over its rows, then L2 normalise; one output row per sentence.
const POOL = /* wgsl */ `
struct P { B: u32, H: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> seg: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
${WORKGROUP_SUM}
@compute @workgroup_size(128)
fn main(@builtin(local_invocation_id) li: vec3u, @builtin(workgroup_id) wg: vec3u) {
  let l = li.x;
  let start = seg[2u * wg.x];
  let count = seg[2u * wg.x + 1u];
  let out = wg.x * p.H;
  var sq = 0.0;
  for (var c = l; c < p.H; c += 128u) {  // mean over tokens
    var s = 0.0;
    for (var r = start; r < start + count; r++) { s += x[r * p.H + c]; }
    let m = s / f32(count);
    y[out + c] = m;
    sq += m * m;
  }
  let norm = max(sqrt(total(sq, l)), 1e-12);  // L2 normalise, as sentence-transformers' Normalize
  for (var c = l; c < p.H; c += 128u) { y[out + c] = y[out + c] / norm; }
}`;

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

const SOFTWARE_GPU = /swiftshader|llvmpipe|lavapipe|softpipe/i;

/** What this browser's WebGPU adapter offers: {webgpu, adapter (its name), software, limits}, or {webgpu: false, reason}. */
export async function adapterReport() {
  if (!navigator.gpu) return { webgpu: false, reason: "This browser has no WebGPU (navigator.gpu is missing)." };
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return { webgpu: false, reason: "WebGPU is present but no GPU adapter is available." };
  const l = adapter.limits;
  const info = adapter.info || {};
  const named = adapter.info ? `${info.vendor || "?"} ${info.architecture || ""} ${info.description || ""}`.trim() : "unknown";
  return {
    webgpu: true,
    adapter: named,
    // A CPU standing in for a GPU (Chrome's SwiftShader, Mesa's llvmpipe/lavapipe): it works, slowly.
    software: Boolean(info.isFallbackAdapter || adapter.isFallbackAdapter || SOFTWARE_GPU.test(named)),
    limits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize, maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize, maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    },
  };
}

export class Gpu {
  static async open() {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) throw new Error("no WebGPU adapter");
    const device = await adapter.requestDevice({
      requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize },
    });
    return new Gpu(device);
  }

  constructor(device) {
    this.device = device;
    this.tensors = new Map();
    this.buffers = new Map();
    this.next = 1;
    this.encoder = null;
    this.pass = null;
    this.uniforms = new Map();
    const make = (code) => device.createComputePipeline({ layout: "auto", compute: { module: device.createShaderModule({ code }), entryPoint: "main" } });
    this.pipelines = { linear: make(LINEAR), layernorm: make(LAYERNORM), attention: make(ATTENTION), embed: make(EMBED), pool: make(POOL) };
  }

  /** Fetch a safetensors file (through the browser's Cache API) and write every f32 tensor to its own GPU buffer. */
  async loadSafetensors(url, onProgress) {
    const cache = await caches.open("one-model-weights-v1");
    let response = await cache.match(url);
    const cached = !!response;
    if (!response) {
      response = await fetch(url);
      if (!response.ok) throw new Error(`weights: HTTP ${response.status}`);
      await cache.put(url, response.clone());
    }
    const bytes = await response.arrayBuffer();
    const headerLength = Number(new DataView(bytes).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(bytes, 8, headerLength)));
    const start = 8 + headerLength;
    const shapes = {};
    for (const [name, info] of Object.entries(header)) {
      if (name === "__metadata__" || info.dtype !== "F32") continue;
      const [from, to] = info.data_offsets;
      const buffer = this.device.createBuffer({ size: Math.max(4, to - from), usage: STORAGE, mappedAtCreation: true });
      new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(bytes, start + from, to - from));
      buffer.unmap();
      this.tensors.set(name, buffer);
      shapes[name] = info.shape;
    }
    if (onProgress) onProgress({ bytes: bytes.byteLength, cached });
    return JSON.stringify(shapes);
  }

  alloc(floats) {
    const id = this.next++;
    this.buffers.set(id, this.device.createBuffer({ size: Math.max(4, floats * 4), usage: STORAGE }));
    return id;
  }

  allocU32(values) {
    const id = this.next++;
    const data = Uint32Array.from(values);
    const buffer = this.device.createBuffer({ size: Math.max(4, data.byteLength), usage: STORAGE, mappedAtCreation: true });
    new Uint32Array(buffer.getMappedRange()).set(data);
    buffer.unmap();
    this.buffers.set(id, buffer);
    return id;
  }

  upload(floats) {
    const id = this.alloc(floats.length);
    this.device.queue.writeBuffer(this.buffers.get(id), 0, Float32Array.from(floats));
    return id;
  }

  /** Concatenate tensors (on the GPU, once at load) into a new one: e.g. Q, K and V weights into one [3H, H]. */
  concat(name, parts) {
    const sizes = parts.map((p) => this.buf(p).size);
    const out = this.device.createBuffer({ size: sizes.reduce((a, b) => a + b, 0), usage: STORAGE });
    const encoder = this.device.createCommandEncoder();
    let offset = 0;
    parts.forEach((p, i) => { encoder.copyBufferToBuffer(this.buf(p), 0, out, offset, sizes[i]); offset += sizes[i]; });
    this.device.queue.submit([encoder.finish()]);
    this.tensors.set(name, out);
  }

  free(...ids) {
    if (this.pass) this.abandon(); // freed before its read: a pass that failed midway, never to be submitted
    for (const id of ids) {
      const buffer = this.buffers.get(id);
      if (buffer) buffer.destroy();
      this.buffers.delete(id);
    }
  }

  abandon() {
    this.pass.end();
    this.pass = null;
    this.encoder = null;
  }

  buf(ref) {
    const b = typeof ref === "number" ? this.buffers.get(ref) : this.tensors.get(ref);
    if (!b) throw new Error(`no GPU buffer ${ref}`);
    return b;
  }

  /** A 16-byte uniform per distinct parameter set, kept: a pass's ~50 dispatches repeat a handful of them. */
  uniform(params) {
    const key = params.map(([type, value]) => type + value).join();
    let buffer = this.uniforms.get(key);
    if (!buffer) {
      if (this.uniforms.size >= 1024) this.uniforms.clear(); // row counts vary per request: stay bounded
      buffer = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
      const view = new DataView(buffer.getMappedRange());
      params.forEach(([type, value], i) => (type === "f32" ? view.setFloat32(i * 4, value, true) : view.setUint32(i * 4, value, true)));
      buffer.unmap();
      this.uniforms.set(key, buffer);
    }
    return buffer;
  }

  /** Record one dispatch into the open compute pass: every dispatch until the next read() shares one pass
   * (WebGPU orders them and makes each one's writes visible to the next). */
  dispatch(pipeline, refs, params, groups) {
    const entries = refs.map((ref, i) => ({ binding: i, resource: { buffer: this.buf(ref) } }));
    entries.push({ binding: refs.length, resource: { buffer: this.uniform(params) } });
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    this.encoder = this.encoder || this.device.createCommandEncoder();
    this.pass = this.pass || this.encoder.beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(...groups);
  }

  /** y[M,N] = x[M,K] · Wᵀ + b (W as stored by PyTorch: [N,K]); gelu=1 applies exact (erf) GELU. */
  linear(x, weight, bias, y, M, K, N, gelu = 0) {
    if (K % 4) throw new Error("linear: K must be a multiple of 4");
    this.dispatch(this.pipelines.linear, [x, weight, bias, y], [["u32", M], ["u32", K], ["u32", N], ["u32", gelu]], [Math.ceil((Math.ceil(M / LINEAR_ROWS) * Math.ceil(N / LINEAR_COLS)) / 64)]);
  }

  /** y = LayerNorm(x (+ residual)) per row of N. residual 0 means none. */
  layerNorm(x, residual, gamma, beta, y, M, N, eps) {
    this.dispatch(this.pipelines.layernorm, [x, residual || x, gamma, beta, y], [["u32", M], ["u32", N], ["u32", residual ? 1 : 0], ["f32", eps]], [Math.ceil(M / 64)]);
  }

  /** out[T, heads*headDim] from the fused qkv[T, 3*heads*headDim]; each row attends within its sentence only. */
  attention(qkv, rowSeg, seg, out, T, heads, headDim) {
    this.dispatch(this.pipelines.attention, [qkv, rowSeg, seg, out], [["u32", T], ["u32", heads], ["u32", headDim], ["f32", 1 / Math.sqrt(headDim)]], [Math.ceil((T * heads) / 64)]);
  }

  /** Word + position (restarting per sentence) + token-type embeddings for T rows. */
  embed(ids, rowSeg, seg, word, pos, typ, y, T, H) {
    this.dispatch(this.pipelines.embed, [ids, rowSeg, seg, word, pos, typ, y], [["u32", T], ["u32", H]], [Math.ceil((T * H) / 64)]);
  }

  /** y[B, H]: each sentence's rows mean-pooled and L2-normalised. */
  meanPoolNormalize(x, seg, y, B, H) {
    this.dispatch(this.pipelines.pool, [x, seg, y], [["u32", B], ["u32", H]], [B]);
  }

  /** Submit what is queued and read `count` floats back. */
  async read(id, count) {
    const staging = this.device.createBuffer({ size: count * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.encoder = this.encoder || this.device.createCommandEncoder();
    if (this.pass) this.pass.end();
    this.pass = null;
    this.encoder.copyBufferToBuffer(this.buf(id), 0, staging, 0, count * 4);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.destroy();
    return out;
  }

  /** read() as a plain Array (Pyodide turns it into a list of floats, each exactly the float32 value). */
  async readArray(id, count) {
    return Array.from(await this.read(id, count));
  }
}
