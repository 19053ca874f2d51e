from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

from whatsapp.web.manager import SessionManager


class Command(BaseCommand):
    help = "The wa-web process: owns the live WhatsApp Web (QR) sessions of every tenant."

    def handle(self, *args: Any, **opts: Any) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        manager = SessionManager()
        self.stdout.write(f"wa-web {manager.process_id} running")
        manager.run(stop)
