import signal

from harness.cli import main

# A background job of a script (`cmd &` without job control: CI steps, `nohup ... &`) starts with SIGINT
# ignored, and Python then keeps it ignored: `kill -INT`, the campaign's forwarded SIGINT and the
# parent-death SIGINT would be lost, and the children (a campaign's find-qps step) inherit the deafness.
# Every command promises to stop on SIGINT, so each takes it back as KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)

raise SystemExit(main())
