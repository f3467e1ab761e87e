// What discovery and prep say about DICOM files that are no CT volume: a lone slice, a
// valid object of another kind, and a slice whose Modality was damaged.
import { join } from "node:path";
import { discoverInputs } from "../../../prep/pipeline/discover.ts";
import { makePhantom } from "../../../prep/synthetic/phantom.ts";
import {
  type DicomElement,
  newUid,
  writeDicomFile,
  writeDicomSeries,
} from "../../../prep/synthetic/write_dicom.ts";
import { main as prepMain } from "../../../tasks/prep.ts";
import { assert, assertEquals, runTask, tempDir } from "../../_helpers.ts";

const phantom = () => makePhantom({ shape: [20, 18, 6], spacingMm: [2, 2, 3] });

async function writeSeries(dir: string, files: { name: string; bytes: Uint8Array }[]) {
  await Deno.mkdir(dir, { recursive: true });
  for (const f of files) await Deno.writeFile(join(dir, f.name), f.bytes);
}

Deno.test("a single CT slice given as a file fails as that file, saying it is one slice", async () => {
  await using dir = await tempDir();
  const series = join(dir.path, "series");
  const files = await writeDicomSeries(phantom());
  await writeSeries(series, files);
  const one = await discoverInputs([join(series, "IM0001.dcm")]);
  assertEquals(one.cases.length, 1);
  assertEquals([one.cases[0].name, one.cases[0].path], ["IM0001", join(series, "IM0001.dcm")]);
  assert(/^a single CT slice, and a volume needs at least 2/.test(one.cases[0].error!));
  const { code, text } = await runTask(prepMain, [
    join(series, "IM0001.dcm"),
    "--out",
    join(dir.path, "c1"),
    "--quiet",
  ]);
  assertEquals(code, 2, text); // nothing was done: the only input is unusable
  assert(/IM0001\.dcm: a single CT slice/.test(text), text);
  assert(!/series\/series/.test(text), text);
  // Named file by file, the slices of a series form one series.
  const all = await discoverInputs(files.map((f) => join(series, f.name)));
  assertEquals(all.cases.map((c) => [c.name, c.files.length, c.error]), [["series", 6, undefined]]);
  // A folder holding one slice says which file it found.
  const lone = join(dir.path, "lone");
  await writeSeries(lone, files.slice(2, 3));
  const folder = await discoverInputs([lone]);
  assertEquals(
    folder.cases[0].error,
    "only 1 CT slice in this series (IM0003.dcm); a volume needs at least 2",
  );
});

/** A DICOM file of one object of SOP class `sop`, with `pixels` samples per pixel or none. */
function object(sop: string, modality: string, pixels: number, extra: DicomElement[] = []) {
  const elements: DicomElement[] = [
    { tag: 0x00080016, vr: "UI", value: sop },
    { tag: 0x00080060, vr: "CS", value: modality },
    { tag: 0x0020000e, vr: "UI", value: newUid() },
    ...extra,
  ];
  if (pixels) {
    elements.push(
      { tag: 0x00280002, vr: "US", value: [pixels] },
      { tag: 0x00280004, vr: "CS", value: pixels === 3 ? "RGB" : "MONOCHROME2" },
      { tag: 0x00280010, vr: "US", value: [4] },
      { tag: 0x00280011, vr: "US", value: [4] },
      { tag: 0x00280100, vr: "US", value: [8] },
      { tag: 0x7fe00010, vr: "OB", value: new Uint8Array(16 * pixels) },
    );
  }
  return writeDicomFile(elements, "1.2.840.10008.1.2.1", sop, newUid());
}

Deno.test("a DICOM file that is not a CT slice, given on its own, fails saying what it is; in a folder it is skipped", async () => {
  await using dir = await tempDir();
  const localizer = await writeDicomSeries(phantom(), {
    imageType: "ORIGINAL\\PRIMARY\\LOCALIZER",
  });
  const files: [string, Uint8Array, RegExp][] = [
    [
      "mr.dcm",
      object("1.2.840.10008.5.1.4.1.1.4", "MR", 1),
      /modality MR, not CT \(MR Image Storage\)/,
    ],
    [
      "us.dcm",
      object("1.2.840.10008.5.1.4.1.1.6.1", "US", 3),
      /modality US, not CT \(Ultrasound Image Storage\)/,
    ],
    [
      "seg.dcm",
      object("1.2.840.10008.5.1.4.1.1.66.4", "SEG", 0),
      /no pixel data \(Segmentation Storage, modality SEG\)/,
    ],
    [
      "rtstruct.dcm",
      object("1.2.840.10008.5.1.4.1.1.481.3", "RTSTRUCT", 0),
      /no pixel data \(RT Structure Set Storage, modality RTSTRUCT\)/,
    ],
    [
      "dose.dcm",
      object("1.2.840.10008.5.1.4.1.1.7", "CT", 3),
      /colour image \(RGB, 3 samples per pixel; Secondary Capture Image Storage\)/,
    ],
    ["scout.dcm", localizer[0].bytes, /localizer \(scout\) image/],
  ];
  for (const [name, bytes] of files) await Deno.writeFile(join(dir.path, name), bytes);
  for (const [name, , reason] of files) {
    const found = await discoverInputs([join(dir.path, name)]);
    assertEquals(found.cases.length, 1, name);
    const error = found.cases[0].error ?? "";
    assert(/^a DICOM file, but not a CT image slice: /.test(error), `${name}: ${error}`);
    assert(reason.test(error), `${name}: ${error}`);
  }
  const { code, text } = await runTask(prepMain, [
    join(dir.path, "mr.dcm"),
    "--out",
    join(dir.path, "c"),
    "--quiet",
  ]);
  assertEquals(code, 2, text); // nothing was done
  assert(/mr\.dcm: a DICOM file, but not a CT image slice: modality MR, not CT/.test(text), text);
  assert(!/no images/.test(text), text);
  // In a folder they are skipped, each with its reason, and counted.
  await writeSeries(join(dir.path, "ct"), await writeDicomSeries(phantom()));
  const folder = await discoverInputs([dir.path]);
  assertEquals(folder.cases.map((c) => c.name), ["ct"]);
  for (const [name, , reason] of files) {
    const s = folder.skipped.find((f) => f.path.endsWith(name));
    assert(s && reason.test(s.reason), `${name}: ${JSON.stringify(s)}`);
  }
});

/** The last slice of a series rewritten with `edit` applied to its elements. */
async function damagedSeries(dir: string, damage: "garbled" | "anonymous" | "other-study") {
  const studyUid = newUid(), seriesUid = newUid();
  const files = await writeDicomSeries(phantom(), { studyUid, seriesUid });
  const last = files.length - 1;
  if (damage === "anonymous") {
    // Everything after a damaged Modality lost: pixel data and nothing to place it.
    files[last] = {
      ...files[last],
      bytes: writeDicomFile(
        [
          { tag: 0x00080016, vr: "UI", value: "1.2.840.10008.5.1.4.1.1.2" },
          { tag: 0x00080060, vr: "CS", value: "\x13T" },
          { tag: 0x7fe00010, vr: "OW", value: new Uint8Array(20 * 18 * 2) },
        ],
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.5.1.4.1.1.2",
        newUid(),
      ),
    };
  } else {
    // Modality and series UID unreadable; study and geometry intact (or another study).
    const one = await writeDicomSeries(phantom(), {
      studyUid: damage === "garbled" ? studyUid : newUid(),
      seriesUid: "",
      modality: "",
      fileName: (k) => `IM${String(k + 1).padStart(4, "0")}.dcm`,
    });
    files[last] = one[last];
  }
  await writeSeries(dir, files);
  return files[last].name;
}

Deno.test("a slice of a CT series with a damaged Modality fails the series by name, never a slice short", async () => {
  await using dir = await tempDir();
  for (const damage of ["garbled", "anonymous"] as const) {
    const folder = join(dir.path, damage);
    const name = await damagedSeries(folder, damage);
    const found = await discoverInputs([folder]);
    assertEquals(found.skipped, [], damage);
    assertEquals(found.cases.length, 1, damage);
    assertEquals(found.cases[0].files.length, 6, damage);
    const { code, text } = await runTask(prepMain, [
      folder,
      "--out",
      join(dir.path, `c-${damage}`),
      "--quiet",
    ]);
    assertEquals(code, 1, text);
    assert(
      new RegExp(
        `${name}: modality (missing|".*T" \\(unreadable\\)), not CT \\(CT Image Storage\\), among this series`,
      )
        .test(text),
      text,
    );
  }
  // A file of another study beside the series, with no readable Modality, is not its
  // slice: skipped, and the series is written whole.
  const other = join(dir.path, "other");
  await damagedSeries(other, "other-study");
  const found = await discoverInputs([other]);
  assertEquals(found.skipped.length, 1);
  assertEquals(found.cases[0].files.length, 5);
});
