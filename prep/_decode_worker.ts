// Worker entry of FrameDecoderPool: decodes the compressed frames the pool posts.
import { decodeFrame, type EncodedFrame } from "./dicom_codecs.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent<{ id: number; frame: EncodedFrame }>) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
}

const scope = self as unknown as WorkerScope;
scope.onmessage = async (e) => {
  const { id, frame } = e.data;
  try {
    const pixels = await decodeFrame(frame);
    scope.postMessage({ id, pixels }, [pixels.buffer as ArrayBuffer]);
  } catch (err) {
    scope.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  }
};
