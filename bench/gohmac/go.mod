module hooksync.local/bench/gohmac

go 1.22
