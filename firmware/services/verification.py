"""The Verification Service Class (PS3.4 A) as SCU: C-ECHO (PS3.7 9.1.5)."""

from firmware.association import AssociationError
from firmware.dicom.uid import IMPLICIT_VR_LITTLE_ENDIAN, VERIFICATION
from firmware.net import dimse

# The context every association of modgate's proposes, so that `echo`
# works on any of them (PS3.4 A.4: Implicit VR LE is the default).
CONTEXT = (VERIFICATION, IMPLICIT_VR_LITTLE_ENDIAN)


def echo(association):
    """C-ECHO on an open association: (status, category, meaning).
    AssociationError if the peer did not accept Verification."""
    context = association.negotiated.choose(*CONTEXT)
    if context is None:
        raise AssociationError(association.negotiated.why_not(VERIFICATION), permanent=True)
    message_id = association.next_message_id()
    association.send(context[0], dimse.c_echo_rq(message_id))
    _, command, _ = association.response(message_id, dimse.C_ECHO_RSP)
    status = command[dimse.Status]
    return (status,) + dimse.status_class(status)
