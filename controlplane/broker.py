"""The embedded Celery broker of `make run`: kombu's filesystem transport, made safe for several
producing and consuming processes.

kombu's own transport (5.x) creates a message file and only then locks and writes it, while a
consumer moves and reads files without the lock: a consumer can take a file that is still empty
and die of a JSON decode error. Its exchange table is truncated before it is locked, with the
same effect on readers. Here every file appears whole or not at all:

- a message is written to a hidden temporary name in the queue folder and renamed into place
  (`os.replace` is atomic within one filesystem), so its `.msg` name only ever names a full file;
- a consumer claims a message by renaming it into the processed folder (on the same filesystem,
  unlike kombu's default of the system's temporary folder, where a move is a copy that two
  consumers can both make), then reads and removes it;
- the exchange table is rewritten the same way, under a lock file of its own for the
  read-modify-write.

Registered for the `filesystem://` URL scheme (`register()`, called by controlplane/celery.py),
so the settings and every process that imports the Celery app use it.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from contextlib import contextmanager
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

TEMPORARY_PREFIX = ".partial-"  # never ends in ".msg", so consumers skip it


def _write_whole(folder: str, final_name: str, data: bytes) -> None:
    """Write `data` under a temporary name in `folder`, then rename it to `final_name`."""
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=TEMPORARY_PREFIX)
    try:
        with open(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, os.path.join(folder, final_name))
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue`: the file appears under its final name complete."""
        filename = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        try:
            _write_whole(self.data_folder_out, filename, str_to_bytes(dumps(payload)))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {filename!r} to {self.data_folder_out}") from exc

    def _get(self, queue):
        """Take the oldest message of `queue`: rename it out of the queue folder (only one consumer
        can), read it, remove it."""
        wanted = f"{queue}.msg"
        claim_folder = self.processed_folder if self.store_processed else self._claim_folder
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(claim_folder, filename)
            try:
                os.rename(os.path.join(self.data_folder_in, filename), claimed)
            except FileNotFoundError:
                continue  # another consumer took it
            except OSError as exc:
                raise ChannelError(f"Cannot take {filename!r} from {self.data_folder_in}") from exc
            try:
                with open(claimed, "rb") as file:
                    payload = file.read()
                if not self.store_processed:
                    os.remove(claimed)
            except OSError as exc:
                raise ChannelError(f"Cannot read file {claimed!r} from queue.") from exc
            return loads(bytes_to_str(payload))
        raise Empty()

    @property
    def _claim_folder(self) -> str:
        """Where a consumer moves a message it takes when processed messages are not kept: a folder
        next to the queue folder, so the rename never crosses filesystems."""
        folder = os.path.join(os.path.dirname(os.path.abspath(self.data_folder_in)), "claimed")
        os.makedirs(folder, exist_ok=True)
        return folder

    # --- the exchange table --------------------------------------------------------------------------
    @contextmanager
    def _table_lock(self, exchange):
        """An exclusive lock for a read-modify-write of the exchange's table (readers need none:
        the table file is always replaced whole)."""
        path = self._exchange_file(exchange).with_suffix(".lock")
        self.control_folder.mkdir(exist_ok=True)
        with open(path, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def get_table(self, exchange):
        file = self._exchange_file(exchange)
        try:
            table = loads(bytes_to_str(file.read_bytes()))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        return [filesystem.exchange_queue_t(*row) for row in table]

    def _write_table(self, exchange, queues) -> None:
        file = self._exchange_file(exchange)
        try:
            _write_whole(str(self.control_folder), file.name, str_to_bytes(dumps(queues)))
        except OSError as exc:
            raise ChannelError(f"Cannot write {file}") from exc

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        row = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange):
            queues = self.get_table(exchange)
            if row not in queues:
                self._write_table(exchange, [row, *queues])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        # The virtual channel's bookkeeping, without kombu's in-place rewrite of the table.
        super(filesystem.Channel, self)._delete(queue, exchange, routing_key, pattern, *args, **kwargs)
        row = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange):
            queues = self.get_table(exchange)
            if row in queues:
                queues.remove(row)
                self._write_table(exchange, queues)


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    """Serve `filesystem://` broker URLs with this transport."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
