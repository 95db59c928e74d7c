"""The microscope side emulated from recordings (``scan-client``): replaying a recording
through a running server as its detector would (``recorded``), a Dectris detector stream
(``stream``), a server started for a demo, test or benchmark (``local_server``) and the demo.
They need the physics and the readers, so they live with the server; the microscope-side
client library (``scan_client``, ``client/``) needs only numpy, httpx and pyzmq."""
