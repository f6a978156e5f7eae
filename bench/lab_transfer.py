"""The lab's transfer stages alone (Exercise 2.1): the source, fine-tuning and scratch sweeps and the probe stage of a
profile, as `reslab lab` runs them, into a lab-shaped folder, then the report's transfer section by itself.

The whole lab takes over half an hour on a 2-core CPU; this runs the four stages it adds for transfer (minutes), so
their settings can be checked on the real data and the numbers quoted in docs/tutorials/transfer.md come from a
command. Finished runs are kept: running it again on the same folder only rewrites the section.

Usage: python bench/lab_transfer.py OUT [--profile quick] [--data-dir ../shared/data]
       [--cifar imagefolder:../shared/data/CIFAR10-JPEG/cifar10-jpeg.zip]
Prints each stage's seconds with the load average before and after (a busy machine says so), then the section's
report.md path.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str]) -> int:
    from reslab.analyze.instruments_transfer import PROBE_STAGE, has_transfer
    from reslab.analyze.lab_studies import SCRATCH, SOURCE, TRANSFER
    from reslab.data import reusing
    from reslab.lab.folder import LabFolder
    from reslab.lab.instruments import analysis_stages
    from reslab.lab.profiles import get_profile
    from reslab.lab.report import _Doc  # the lab report's document: the section is written as the lab writes it
    from reslab.lab.stages import LabContext, run_study
    from reslab.lab.transfer_report import transfer_section
    from reslab.report.writer import MARKDOWN, write_folder

    shared = REPO.parent / "shared" / "data"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--profile", default="quick")
    p.add_argument("--data-dir", default=str(shared))
    p.add_argument("--cifar", default=f"imagefolder:{shared / 'CIFAR10-JPEG' / 'cifar10-jpeg.zip'}")
    args = p.parse_args(argv)
    profile = get_profile(args.profile)
    if not has_transfer(profile):
        print(f"lab_transfer: the profile {args.profile} has no transfer studies", file=sys.stderr)
        return 2
    folder = LabFolder(args.out)
    folder.path.mkdir(parents=True, exist_ok=True)
    ctx = LabContext(folder, profile, "mnist", args.cifar, args.data_dir, None, "local", "cpu", io.StringIO())
    probe = next(s for s in analysis_stages(profile) if s.name == PROBE_STAGE)

    def timed(name: str, work: object) -> None:
        before, started = os.getloadavg(), time.perf_counter()
        work()  # type: ignore[operator]
        print(f"{name}: {time.perf_counter() - started:.1f} s (load average {before[0]:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs)", flush=True)

    @reusing()
    def run() -> None:
        for name in (SOURCE, TRANSFER, SCRATCH):
            timed(name, lambda: run_study(ctx, profile.study(name)))
        if not (folder.analysis(PROBE_STAGE) / "analysis.json").is_file():
            def measure() -> None:
                with folder.building(folder.analysis(PROBE_STAGE)) as temp:
                    probe.measure(ctx, temp)  # type: ignore[misc]
            timed(PROBE_STAGE, measure)

    run()

    def fill(out: Path) -> None:
        doc = _Doc(out)
        transfer_section(doc, folder, profile, number=1)
        doc.write("reslab lab: the transfer section", doc.blocks, {"profile": profile.name, "findings": doc.findings})

    print(write_folder(folder.report, fill, replace=True) / MARKDOWN)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
