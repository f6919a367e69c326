"""Tools for tests and benchmarks, not the runtime: ``synth`` writes test clips of LFW faces with
per-frame ground truth, ``mjpeg`` serves a clip as a live MJPEG stream over loopback HTTP."""
