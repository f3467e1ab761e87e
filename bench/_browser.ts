// Headless Chromium for the viewer's browser tests and its benchmark: Debian's `chromium` (or
// CHROMIUM_PATH), driven by puppeteer-core over a pipe, with software WebGL (SwiftShader).
import puppeteer, { type Browser } from "puppeteer-core";

/** The Chromium binary to use, or undefined when there is none (tests then skip). */
export function findChromium(): string | undefined {
  const candidates = [
    Deno.env.get("CHROMIUM_PATH"),
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
  ];
  for (const c of candidates) {
    try {
      if (c && Deno.statSync(c).isFile) return c;
    } catch { /* not there */ }
  }
  return undefined;
}

/** Launches headless Chromium with software WebGL2. */
export async function launchBrowser(executablePath: string): Promise<Browser> {
  return await puppeteer.launch({
    executablePath,
    pipe: true,
    headless: true,
    args: [
      "--no-sandbox",
      "--use-angle=swiftshader",
      "--enable-unsafe-swiftshader",
      "--disable-dev-shm-usage",
      "--window-size=1300,900",
    ],
  });
}
