// Voice in the browser, through the server's sockets (nexent-api.md §7): dictation sends the microphone
// as 16 kHz mono s16le PCM to `/api/voice/stt/ws` and reports the cumulative transcript; read-aloud sends a
// text to `/api/voice/tts/ws` and plays the MP3 chunks that come back.
import { apiToken } from "../api/client";
import { t, type Language } from "./i18n";

/** A browser cannot set headers on a WebSocket, so the API token (when the server needs one) travels as
 *  `access_token`, which the server accepts in place of the bearer header. `params` are further query
 *  parameters. */
export function socketUrl(path: string, params: Record<string, string> = {}): string {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const query = Object.entries(params).map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
  const token = apiToken();
  if (token) query.push(`access_token=${encodeURIComponent(token)}`);
  return `${scheme}//${window.location.host}${path}${query.length > 0 ? `?${query.join("&")}` : ""}`;
}

/** The dictation socket's query for the UI's language: Chinese asks for `language=zh` (the server then uses
 *  its multilingual speech model); English sends none, the server's default. */
export function dictationParams(language: Language): Record<string, string> {
  return language === "zh" ? { language: "zh" } : {};
}

/** Float samples in [-1, 1] to signed 16-bit little-endian PCM. */
export function toPcm16(samples: Float32Array): ArrayBuffer {
  const out = new DataView(new ArrayBuffer(samples.length * 2));
  for (let index = 0; index < samples.length; index += 1) {
    const sample = Math.max(-1, Math.min(1, samples[index]));
    out.setInt16(index * 2, sample < 0 ? sample * 0x8000 : sample * 0x7fff, true);
  }
  return out.buffer;
}

/** The part of a WebSocket that recording needs (a real one in the app, a stand-in in unit tests). */
export interface FrameSocket {
  readonly readyState: number;
  send(data: ArrayBuffer): void;
}

const SOCKET_CONNECTING = 0;
const SOCKET_OPEN = 1;
/** About 30 s of audio (4096 samples at 16 kHz a frame): kept while the connection opens, then dropped. */
export const MAX_EARLY_FRAMES = 120;

/**
 * Sends recorded frames in order. The microphone starts before the socket has opened (longer on a busy
 * machine), and what the user says at once must not be lost: frames recorded meanwhile are kept and sent
 * first once it opens. A socket that closed takes nothing.
 */
export class FrameSender {
  private early: ArrayBuffer[] = [];

  constructor(private readonly socket: FrameSocket) {}

  push(frame: ArrayBuffer): void {
    if (this.socket.readyState === SOCKET_OPEN) {
      this.flush();
      this.socket.send(frame);
    } else if (this.socket.readyState === SOCKET_CONNECTING && this.early.length < MAX_EARLY_FRAMES) {
      this.early.push(frame);
    }
  }

  /** Sends the frames kept while the socket was opening; call when it opens. */
  flush(): void {
    if (this.socket.readyState !== SOCKET_OPEN) return;
    for (const frame of this.early.splice(0)) this.socket.send(frame);
  }

  get waiting(): number {
    return this.early.length;
  }
}

export interface Dictation {
  /** Ends the recording; resolves with the final transcript. */
  stop(): Promise<string>;
}

/** Starts recording in `language` (the UI's). `onText` gets the transcript as it grows. */
export async function startDictation(onText: (text: string) => void, language: Language = "en"): Promise<Dictation> {
  const media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
  // The browser resamples the microphone to the 16 kHz the server takes.
  const context = new AudioContext({ sampleRate: 16_000 });
  const input = context.createMediaStreamSource(media);
  // ScriptProcessor is what Nexent's own frontend uses: 4096 samples (8192 bytes) per frame.
  const processor = context.createScriptProcessor(4096, 1, 1);
  const socket = new WebSocket(socketUrl("/api/voice/stt/ws", dictationParams(language)));
  socket.binaryType = "arraybuffer";
  let finalText = "";
  let failure: string | null = null;
  let settle: ((text: string) => void) | null = null;
  socket.onmessage = (event) => {
    if (typeof event.data !== "string") return;
    const message = JSON.parse(event.data) as { result?: { text?: string }; is_final?: boolean; error?: string };
    if (message.error) failure = message.error;
    if (message.result?.text !== undefined) {
      finalText = message.result.text;
      onText(finalText);
    }
    if (message.is_final) settle?.(finalText);
  };
  socket.onclose = () => settle?.(finalText);
  const sender = new FrameSender(socket);
  // Set before stop() may replace it: what was recorded while connecting goes first.
  socket.onopen = () => sender.flush();
  processor.onaudioprocess = (event) => sender.push(toPcm16(event.inputBuffer.getChannelData(0)));
  input.connect(processor);
  processor.connect(context.destination);
  return {
    stop: () =>
      new Promise((resolve, reject) => {
        processor.disconnect();
        input.disconnect();
        media.getTracks().forEach((track) => track.stop());
        void context.close();
        settle = (text) => {
          settle = null;
          socket.close();
          if (failure) reject(new Error(failure));
          else resolve(text);
        };
        // The seed's end of stream: an empty frame; the server answers with the final text. Stopped before
        // the socket opened: the recording is sent, then the end, once it opens.
        const finish = () => {
          sender.flush();
          socket.send(new ArrayBuffer(0));
        };
        if (socket.readyState === WebSocket.OPEN) finish();
        else if (socket.readyState === WebSocket.CONNECTING) socket.onopen = finish;
        else settle(finalText);
      }),
  };
}

/** Speaks `text` with the local voice; resolves when playback has started, with the audio element. */
export function readAloud(text: string): Promise<HTMLAudioElement> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(socketUrl("/api/voice/tts/ws"));
    socket.binaryType = "arraybuffer";
    const chunks: ArrayBuffer[] = [];
    socket.onopen = () => socket.send(JSON.stringify({ text }));
    socket.onerror = () => reject(new Error(t("error.speechUnreachable")));
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") {
        chunks.push(event.data as ArrayBuffer);
        return;
      }
      const message = JSON.parse(event.data) as { status?: string; error?: string };
      if (message.error) {
        socket.close();
        reject(new Error(message.error));
      } else if (message.status === "completed") {
        socket.close();
        const audio = new Audio(URL.createObjectURL(new Blob(chunks, { type: "audio/mpeg" })));
        audio.play().then(() => resolve(audio), reject);
      }
    };
  });
}
