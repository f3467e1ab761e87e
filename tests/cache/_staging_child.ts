// A child process for the staging tests, run with the prep task's permissions (no /proc):
// `hold ROOT` creates a staging run, prints its folder and waits to be killed; `clean ROOT`
// runs cleanStaging() and prints the staging folders left.
import { join } from "node:path";
import { cleanStaging, createStagingRun } from "../../cache/write/cache_dir.ts";

const [what, root] = Deno.args;
if (what === "hold") {
  const run = await createStagingRun(root);
  console.log(run.dir);
  await new Promise(() => {}); // until killed
} else {
  await cleanStaging(root);
  const left = await Array.fromAsync(Deno.readDir(join(root, ".staging"))).catch(() => []);
  console.log(JSON.stringify(left.map((e) => e.name).sort()));
}
