// A Worker that opens a CacheReader from plain data (a URL and options) and reads a crop.
import { CacheReader } from "../../../cache/read/cache_reader.ts";

/** The Worker scope, as much of it as is used here. */
const scope = self as unknown as {
  onmessage: (e: MessageEvent) => void;
  postMessage(message: unknown, transfer?: Transferable[]): void;
};

scope.onmessage = async (e: MessageEvent) => {
  const { url, options, name, start, size } = e.data;
  try {
    const reader = await CacheReader.open(url, options);
    const crop = await reader.readCrop(name, start, size);
    scope.postMessage({ data: crop.data, shape: crop.shape }, [crop.data.buffer as ArrayBuffer]);
  } catch (err) {
    scope.postMessage({ error: (err as Error).message });
  }
};
