"""The test world: a local control plane, a process kubelet, Git over HTTP and Git-host stand-ins.

Tooling shared by the tests, the benchmarks, `make demo` and `hack/local-cluster`; never part of
the wheel or the images."""
