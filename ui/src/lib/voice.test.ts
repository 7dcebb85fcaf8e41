import { describe, expect, it } from "vitest";
import { FrameSender, MAX_EARLY_FRAMES, type FrameSocket } from "./voice";

/** A stand-in socket: its state is set by the test, what it was sent is recorded. */
class RecordingSocket implements FrameSocket {
  readyState = 0;
  sent: number[] = [];
  send(data: ArrayBuffer): void {
    this.sent.push(new Uint8Array(data)[0] ?? -1);
  }
}

const frame = (marker: number): ArrayBuffer => new Uint8Array([marker]).buffer;

describe("FrameSender", () => {
  it("keeps what is recorded while the socket opens and sends it first, in order", () => {
    const socket = new RecordingSocket();
    const sender = new FrameSender(socket);
    sender.push(frame(1));
    sender.push(frame(2));
    expect(socket.sent).toEqual([]);
    socket.readyState = 1;
    sender.push(frame(3));
    expect(socket.sent).toEqual([1, 2, 3]);
    sender.flush();
    expect(socket.sent).toEqual([1, 2, 3]);
  });

  it("flushes on open without a new frame", () => {
    const socket = new RecordingSocket();
    const sender = new FrameSender(socket);
    sender.push(frame(7));
    sender.flush();
    expect(socket.sent).toEqual([]);
    socket.readyState = 1;
    sender.flush();
    expect(socket.sent).toEqual([7]);
  });

  it("keeps at most about 30 s while connecting, and nothing for a closed socket", () => {
    const socket = new RecordingSocket();
    const sender = new FrameSender(socket);
    for (let index = 0; index < MAX_EARLY_FRAMES + 50; index += 1) sender.push(frame(index % 200));
    expect(sender.waiting).toBe(MAX_EARLY_FRAMES);
    socket.readyState = 3;
    sender.push(frame(1));
    sender.flush();
    expect(socket.sent).toEqual([]);
  });
});
