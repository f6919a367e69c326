"""Tools for tests and benchmarks, not the runtime: ``synth`` writes test clips of LFW faces with
per-frame ground truth (``footage``: the cuts, camera moves, blur, drift and compression of real
video, which ``synth`` composes), ``mjpeg`` serves a clip as a live MJPEG stream over loopback HTTP,
``attacks`` makes print and screen presentation attacks of a photo (liveness)."""
