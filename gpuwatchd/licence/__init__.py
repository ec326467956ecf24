"""vGPU software licence watch: probe, node checks, state model and guarded remediation.

The collector (``gpuwatchd.collectors.licence``) composes these modules; each one takes its
sources (NVML link, command runner, line source, filesystem root, clock) as arguments, so the
tests and the simulator feed them without a vGPU guest. Facts and sources:
``shared/reference/gridd-licence.md``; operator guide: ``docs/licence.md``.
"""
