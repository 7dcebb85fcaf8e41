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
  processor.onaudioprocess = (event) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(toPcm16(event.inputBuffer.getChannelData(0)));
  };
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
        // The seed's end of stream: an empty frame; the server answers with the final text.
        if (socket.readyState === WebSocket.OPEN) socket.send(new ArrayBuffer(0));
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
