"""Reference runtimes for bench-voice, on the same audio, model files and cores as ours.

    python voice_reference.py SPEC.json  ->  JSON on stdout

SPEC: {"ct2_model": dir, "threads": n, "stt": [{"name", "wav", "seconds"}], "voice": onnx, "tts": [text, ...]}

Speech-to-text: faster-whisper (CTranslate2) on the same tiny.en CTranslate2 model our ggml file is
converted from, int8 on CPU, greedy (beam 1, as ours), no VAD filter (the clips are speech). Text-to-speech:
piper-tts on the same en_US-joe-medium voice (its own espeak-ng inside). Each figure is the best of `runs`
after one warm-up, as the Rust side measures ours.
"""

import json
import sys
import time


def best(runs, work):
    work()
    times = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result


def speech_to_text(spec):
    from faster_whisper import WhisperModel

    model = WhisperModel(spec["ct2_model"], device="cpu", compute_type="int8", cpu_threads=spec["threads"])
    rows = []
    for clip in spec["stt"]:
        def work():
            segments, _ = model.transcribe(clip["wav"], beam_size=1, language="en", vad_filter=False,
                                           condition_on_previous_text=False)
            return "".join(segment.text for segment in segments).strip()
        seconds, text = best(spec.get("runs", 3), work)
        rows.append({"name": clip["name"], "elapsed": seconds, "text": text})
    return rows


def text_to_speech(spec):
    from piper import PiperVoice

    voice = PiperVoice.load(spec["voice"])
    rows = []
    for text in spec["tts"]:
        def work():
            started = time.perf_counter()
            first = None
            samples = 0
            for chunk in voice.synthesize(text):
                if first is None:
                    first = time.perf_counter() - started
                samples += len(chunk.audio_int16_bytes) // 2
            return first, samples / voice.config.sample_rate
        seconds, (first, audio_seconds) = best(spec.get("runs", 3), work)
        rows.append({"elapsed": seconds, "first_chunk": first, "audio_seconds": audio_seconds})
    return rows


def main():
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    # onnxruntime and CTranslate2 take the cores they are given.
    import os
    os.environ.setdefault("OMP_NUM_THREADS", str(spec["threads"]))
    print(json.dumps({"stt": speech_to_text(spec), "tts": text_to_speech(spec)}))


if __name__ == "__main__":
    main()
