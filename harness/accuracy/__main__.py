from harness.submission.accuracy.report import main

raise SystemExit(main())
