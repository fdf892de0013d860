"""The `eelbert` command: thin argument parsing over library functions."""

import argparse


def main(argv=None):
    parser = argparse.ArgumentParser(prog="eelbert", description="EELBERT: BERT without an input-embedding table")
    commands = parser.add_subparsers(dest="command", required=True)
    quick = commands.add_parser("quickstart", help="build UNO-EELBERT, save a Hub-ready folder, reload it remotely")
    quick.add_argument("--output-dir", default=None, help="where to save (default: a new temporary folder)")
    quick.add_argument("--preset", default="uno", choices=["uno", "tiny", "mini", "base"])
    args = parser.parse_args(argv)
    if args.command == "quickstart":
        from .quickstart import run_quickstart

        result = run_quickstart(args.output_dir, args.preset)
        if result["max_diff"] > 1e-5:
            raise SystemExit(f"remote-code outputs differ by {result['max_diff']:.2e}")


if __name__ == "__main__":
    main()
