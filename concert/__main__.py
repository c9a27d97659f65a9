from concert.cli import main

raise SystemExit(main())
