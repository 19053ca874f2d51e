"""WhatsApp Web (QR-linked) sessions: the engine boundary, the session manager of the `wa-web` process,
and the provider that inbox, bots and campaigns use like any other."""
