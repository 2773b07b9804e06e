from earlyreadout.cli import main

raise SystemExit(main())
