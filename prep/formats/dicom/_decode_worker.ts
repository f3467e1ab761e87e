// Worker entry of FrameDecoderPool and DecodeWorkers: decodes the compressed frames posted
// to it directly, or through the message ports other threads connect to it.
import { decodeFrame, type EncodedFrame } from "./dicom_codecs.ts";

type Request = { id: number; frame: EncodedFrame } | { port: MessagePort };
interface Endpoint {
  onmessage: ((e: MessageEvent<Request>) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
}

function serve(endpoint: Endpoint): void {
  endpoint.onmessage = async (e) => {
    const request = e.data;
    if ("port" in request) {
      serve(request.port as unknown as Endpoint);
      return;
    }
    const { id, frame } = request;
    try {
      const pixels = await decodeFrame(frame);
      endpoint.postMessage({ id, pixels }, [pixels.buffer as ArrayBuffer]);
    } catch (err) {
      endpoint.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
    }
  };
}

serve(self as unknown as Endpoint);
