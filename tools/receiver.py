"""A small Storage SCP for `modgate demo` and the tests: pynetdicom on a free
loopback port, writing each object it receives, as received, into a folder
named by SOP Instance UID. Host side only (pynetdicom is not firmware).

    rx = Receiver(folder).start()     rx.port, rx.ae_title
    rx.files()                        {SOP Instance UID: path}
    rx.stop()
"""

import os
import threading

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification


class Receiver:
    def __init__(self, folder, ae_title="MODGATE-RX", host="127.0.0.1", port=0):
        self.folder = folder
        self.ae_title = ae_title
        self.host = host
        self.port = port
        self.received = 0
        self._lock = threading.Lock()
        self._server = None
        os.makedirs(folder, exist_ok=True)

    def start(self):
        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = 65536
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax)
        ae.add_supported_context(Verification)
        self._server = ae.start_server((self.host, self.port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        self.port = self._server.server_address[1]
        return self

    def _on_store(self, event):
        uid = event.request.AffectedSOPInstanceUID
        path = os.path.join(self.folder, uid + ".dcm")
        partial = path + ".part"
        # The data set as it came off the wire, behind File Meta
        # Information that pynetdicom builds from the request.
        with open(partial, "wb") as f:
            f.write(event.encoded_dataset())
        os.replace(partial, path)
        with self._lock:
            self.received += 1
        return 0x0000

    def files(self):
        found = {}
        for name in os.listdir(self.folder):
            if name.endswith(".dcm"):
                found[name[:-4]] = os.path.join(self.folder, name)
        return found

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server = None


def check_clip(path, clip, pattern):
    """Problems with a received clip (empty: none): the SOP Instance UID,
    the Instance Number, and every pixel, against the simulated board's
    pattern for frames clip.first_sequence onwards."""
    import pydicom

    problems = []
    ds = pydicom.dcmread(path)
    if ds.SOPInstanceUID != clip.sop_instance_uid:
        problems.append("SOP Instance UID %s, expected %s" % (ds.SOPInstanceUID, clip.sop_instance_uid))
    if int(ds.InstanceNumber) != clip.instance_number:
        problems.append("Instance Number %s, expected %d" % (ds.InstanceNumber, clip.instance_number))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames != clip.frames:
        problems.append("%d frames, expected %d" % (frames, clip.frames))
    expected = b"".join(pattern.frame(k) for k in range(clip.first_sequence, clip.first_sequence + clip.frames))
    got = ds.PixelData
    if got[: len(expected)] != expected or len(got) - len(expected) > 1:
        problems.append("pixel data differs from the pattern")
    return problems
