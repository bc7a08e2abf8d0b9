import sys

if len(sys.argv) > 1 and sys.argv[1] in ("package", "check"):
    command = sys.argv.pop(1)
    if command == "package":
        from harness.submission.package import main
    else:
        from harness.submission.check import main
else:
    from harness.run.runner import main

sys.exit(main())
