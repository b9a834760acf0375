"""`make bench`: run every benchmark and print each figure beside the spec's number."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["dicomweb_throughput.py", "page_load.py"]

if __name__ == "__main__":
    failed = 0
    for name in BENCHES:
        print(f"\n=== {name} ===", flush=True)
        failed += (
            subprocess.run([sys.executable, str(HERE / name), *sys.argv[1:]], check=False).returncode != 0
        )
    sys.exit(1 if failed else 0)
