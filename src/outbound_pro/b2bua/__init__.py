"""The back-to-back user agent: every call is two dialogs joined by the server.

Modules, one concept each:

* :mod:`.routing` -- who a call goes to (trunk, booth, internal), number formats, trusted
  sources and special numbers; pure functions.
* :mod:`.client_auth` -- answering a carrier's 401/407 with the trunk's credentials.
* :mod:`.dialog` -- one side's dialog state (Call-ID, tags, CSeq space, target, route set) and
  the in-dialog requests built from it.
* :mod:`.record` -- the CDR as a declared record, filled in as the call progresses.
* :mod:`.call` -- one call: both legs, the relay session, the recorder, timers.
* :mod:`.engine` -- the transaction user: routes SIP events to calls, authenticates booths,
  applies policy.
"""
