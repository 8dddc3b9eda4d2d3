// The softphone's audio, on the audio thread. Twilio's line format: 8 kHz G.711 μ-law, 20 ms (160-byte) frames.
//   mulaw-capture: the microphone at the context's rate -> 8 kHz (each output sample the mean of the input samples
//     in its window: a low-pass before decimation) -> μ-law -> a 160-byte frame posted every 20 ms.
//   mulaw-playback: the agent's μ-law queued in arrival order with its marks; played at the context's rate; a mark
//     is reported once everything queued before it has played; `clear` drops everything queued at once.

const LINE_RATE = 8000;
const FRAME_BYTES = 160;

function linearToMulaw(sample) {
  const BIAS = 0x84;
  const CLIP = 32635;
  let pcm = Math.max(-1, Math.min(1, sample)) * 32767;
  const sign = pcm < 0 ? 0x80 : 0;
  if (sign) pcm = -pcm;
  pcm = Math.min(CLIP, pcm) + BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (pcm & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (pcm >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

const MULAW_TO_LINEAR = new Float32Array(256);
for (let byte = 0; byte < 256; byte++) {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 0x07;
  const magnitude = ((((u & 0x0f) << 3) + 0x84) << exponent) - 0x84;
  MULAW_TO_LINEAR[byte] = ((u & 0x80) ? -magnitude : magnitude) / 32768;
}

class MulawCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / LINE_RATE; // input samples per output sample
    this.position = 0; // input samples into the current output sample's window
    this.sum = 0;
    this.count = 0;
    this.frame = new Uint8Array(FRAME_BYTES);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      this.sum += channel[i];
      this.count++;
      this.position++;
      if (this.position >= this.step) {
        this.position -= this.step;
        this.frame[this.filled++] = linearToMulaw(this.sum / this.count);
        this.sum = 0;
        this.count = 0;
        if (this.filled === FRAME_BYTES) {
          const frame = this.frame;
          this.port.postMessage(frame, [frame.buffer]);
          this.frame = new Uint8Array(FRAME_BYTES);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

class MulawPlayback extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; // {audio: Float32Array, offset} or {mark: name}
    this.step = LINE_RATE / sampleRate; // line samples per output sample
    this.phase = 0; // fraction of the current line sample already played
    this.playedBytes = 0; // line samples (= μ-law bytes) played since the call started
    this.reportedFrames = 0;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(message) {
    if (message.media) {
      const bytes = message.media;
      const audio = new Float32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) audio[i] = MULAW_TO_LINEAR[bytes[i]];
      this.queue.push({ audio, offset: 0 });
    } else if (message.mark !== undefined) {
      this.queue.push({ mark: message.mark });
    } else if (message.clear) {
      this.queue = [];
      this.phase = 0;
      this.port.postMessage({ cleared: true, playedBytes: this.playedBytes });
    }
  }

  // Marks at the head of the queue: everything before them has played.
  reportMarks() {
    while (this.queue.length && this.queue[0].mark !== undefined) {
      this.port.postMessage({ played: this.queue.shift().mark, playedBytes: this.playedBytes });
    }
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    this.reportMarks();
    for (let i = 0; i < out.length; i++) {
      const head = this.queue[0];
      if (!head) {
        out[i] = 0;
        continue;
      }
      out[i] = head.audio[head.offset];
      this.phase += this.step;
      while (this.phase >= 1 && this.queue.length && this.queue[0].audio) {
        this.phase -= 1;
        const current = this.queue[0];
        current.offset++;
        this.playedBytes++;
        if (current.offset >= current.audio.length) {
          this.queue.shift();
          this.reportMarks();
        }
      }
    }
    for (let o = 1; o < outputs[0].length; o++) outputs[0][o].set(out);
    const frames = Math.floor(this.playedBytes / FRAME_BYTES);
    if (frames !== this.reportedFrames) {
      this.reportedFrames = frames;
      this.port.postMessage({ playedBytes: this.playedBytes });
    }
    return true;
  }
}

registerProcessor("mulaw-capture", MulawCapture);
registerProcessor("mulaw-playback", MulawPlayback);
