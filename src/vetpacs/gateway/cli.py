"""`vetpacs-gateway`: the on-premises agent's command line."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: vetpacs-gateway COMMAND\n\nThe gateway is being built (see docs/conformance.md).")
        return 0
    print(f"vetpacs-gateway: '{args[0]}' is not available in this version", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
