import signal

from harness.cli import main

# A background job of a script (`cmd &` in a shell without job control, as in CI steps and cron) starts with SIGINT
# ignored, and Python then keeps it ignored: `kill -INT`, the campaign's forwarded SIGINT and the
# parent-death SIGINT would be lost, and the children (a campaign's find-qps step) inherit the deafness.
# Every command promises to stop on SIGINT, so each takes it back as KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)

raise SystemExit(main())
