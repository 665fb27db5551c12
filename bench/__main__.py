import sys

try:
    from bench.cli import main

    sys.exit(main())
except KeyboardInterrupt:  # Ctrl-C while Python imports bench, before `main` can handle it
    print("interrupted by SIGINT", file=sys.stderr)
    sys.exit(130)
