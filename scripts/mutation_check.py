#!/usr/bin/env python3
"""Mutation check for the guarantees the README makes: break each one on purpose, run the fast tests that
should notice, and report any breakage that survives.

Each mutation is a named source patch (file, old snippet, new snippet) applied to a scratch copy of the
repository (the working tree as it is, uncommitted files included; the real checkout is never modified).
The named tests run from the scratch copy with the repository's ``.venv`` python and ``PYTHONPATH`` set to
the copy, so the mutated package is the one imported (checked before the first run, and the emulator the
tests start is a subprocess that inherits the same path).

    .venv/bin/python scripts/mutation_check.py               # every mutation (baseline run first)
    .venv/bin/python scripts/mutation_check.py --list        # names, guarantees, tests
    .venv/bin/python scripts/mutation_check.py --anchors     # only check every old snippet still applies
    .venv/bin/python scripts/mutation_check.py -k lock -k upload   # mutations whose name contains a word

Exit status: 0 when every mutation was caught; 1 when one survived (or its tests errored, or the unmutated
baseline failed); 2 when an anchor no longer applies (the code moved: update the table below).
See docs/mutation-check.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PKG = "airflow_provider_dropbox"


@dataclass(frozen=True)
class Mutation:
    name: str
    guarantee: str
    file: str  # relative to airflow_provider_dropbox/
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest node ids or files (run with -m "not slow")


G = "tests/guarantees"
S = "tests/sync"
MUTATIONS: tuple[Mutation, ...] = (
    # ---------------------------------------------------------------- the eight of issue 20
    Mutation(
        "upload-skip-size-only",
        "skip_if_identical skips only when the content hash matches, not on equal size",
        "client/upload.py",
        'and existing.get("content_hash") == (f.file_hash())',
        "and True",
        (f"{G}/test_upload_guarantees.py::test_same_size_different_content_is_uploaded",),
    ),
    Mutation(
        "upload-result-check-never-raises",
        "an upload whose stored hash or size differs from the local file fails (ContentHashMismatchError)",
        "client/upload.py",
        'if meta.get("content_hash") not in (None, expected) or int(meta.get("size", f.size)) != f.size:',
        "if False:",
        (
            f"{G}/test_upload_guarantees.py::test_upload_fails_when_dropbox_reports_other_bytes",
            f"{G}/test_upload_guarantees.py::test_batch_upload_reports_the_entry_dropbox_stored_differently",
        ),
    ),
    Mutation(
        "async-hook-no-token-mask",
        "a token refreshed in the triggerer is masked",
        "hooks/dropbox_async.py",
        "asyncio.run_coroutine_threadsafe(_amask(token), loop)",
        "pass",
        (f"{G}/test_auth_retry_guarantees.py::test_async_hook_masks_a_token_refreshed_in_the_triggerer",),
    ),
    Mutation(
        "upload-single-no-content-hash",
        "every upload request carries the content_hash of its bytes (single request)",
        "client/upload.py",
        'arg = {**commit, "content_hash": f.request_hash(0, f.size)}',
        "arg = {**commit}",
        (
            f"{G}/test_upload_guarantees.py::test_corrupted_upload_body_is_refused_and_nothing_corrupt_is_stored",
        ),
    ),
    Mutation(
        "upload-chunk-no-content-hash",
        "every upload request carries the content_hash of its bytes (session chunks)",
        "client/upload.py",
        'arg = {**arg, "content_hash": content_hash or f.request_hash(offset, length, workers)}',
        "arg = {**arg}",
        (
            f"{G}/test_upload_guarantees.py::test_corrupted_upload_body_is_refused_and_nothing_corrupt_is_stored",
        ),
    ),
    Mutation(
        "upload-recovery-accepts-any-file",
        "after a lost commit answer, only a remote file with exactly our bytes counts as committed",
        "client/upload.py",
        'meta.get(".tag", "file") == "file" and meta.get("content_hash") == file_hash',
        'meta.get(".tag", "file") == "file"',
        (
            f"{G}/test_upload_guarantees.py::test_lost_single_commit_does_not_accept_a_different_file",
            f"{G}/test_upload_guarantees.py::test_lost_batch_commit_does_not_accept_a_different_file",
        ),
    ),
    Mutation(
        "auth-refresh-only-after-401",
        "a token with a known lifetime is refreshed before it expires",
        "client/auth.py",
        "return self._expires_at is not None and time.monotonic() >= self._expires_at - self._margin",
        "return False",
        (f"{G}/test_auth_retry_guarantees.py::test_token_with_known_lifetime_is_refreshed_before_expiry",),
    ),
    Mutation(
        "retry-not-found",
        "a non-retryable error (path/not_found) costs exactly one request",
        "client/retry.py",
        "return isinstance(exc, (RateLimitError, ServerError, *_TRANSIENT_IO))",
        "return isinstance(exc, (RateLimitError, ServerError, *_TRANSIENT_IO))"
        ' or "not_found" in getattr(exc, "tags", ())',
        (f"{G}/test_auth_retry_guarantees.py::test_not_found_costs_exactly_one_request",),
    ),
    Mutation(
        "trigger-drops-backoff-after-changes",
        "the watcher honours longpoll backoff also after a batch with changes",
        "triggers/dropbox.py",
        "self.pending_backoff = float(backoff)",
        "pass",
        (f"{G}/test_trigger_guarantees.py",),
    ),
    # ---------------------------------------------------------------- already caught before issue 20
    Mutation(
        "mirror-empty-remote-guard",
        "an empty remote listing never empties a non-empty mirror without allow_empty_remote",
        "sync/engine.py",
        "remote_files == 0 and not allow_empty_remote",
        "False",
        (
            f"{S}/test_engine.py::test_empty_remote_never_empties_the_mirror",
            f"{S}/test_plan.py::test_empty_remote_guard",
        ),
    ),
    Mutation(
        "mirror-max-deletes-guard",
        "max_deletes (count or percent) aborts before deleting",
        "sync/engine.py",
        '(kind == "count" and deletes > value) or (kind == "pct" and pct > value)',
        "False",
        (
            f"{S}/test_engine.py::test_max_deletes_count_and_percent",
            f"{S}/test_plan.py::test_max_deletes_guard",
        ),
    ),
    Mutation(
        "mirror-deletes-after-failure",
        "no deletes when anything failed in the run",
        "sync/apply.py",
        "if res.errors:\n                res.deletes_skipped",
        "if False:\n                res.deletes_skipped",
        (f"{S}/test_engine.py::test_failure_in_run_blocks_deletes_and_keeps_cursor",),
    ),
    Mutation(
        "mirror-cursor-advances-after-failure",
        "the cursor advances only after every change it covers was applied",
        "sync/engine.py",
        "if errors:\n        if rows or unsettled:",
        "if False:\n        if rows or unsettled:",
        (f"{S}/test_engine.py::test_failure_in_run_blocks_deletes_and_keeps_cursor",),
    ),
    Mutation(
        "mirror-slice-judges-unplaced-rows",
        "an incremental slice never judges (deletes) a manifest row whose key it did not load",
        "sync/partial.py",
        "if p in layout.paths or s.decidable(m.key):",
        "if True:",
        (f"{S}/test_partial.py::test_a_row_the_slice_cannot_place_is_left_out_never_judged",),
    ),
    Mutation(
        "mirror-slice-ignores-collision-group",
        "a change reloads the folders of its collision group (their local names may change)",
        "sync/partial.py",
        "if sibling.is_dir and (sibling.key in keys or collision_key(sibling.name) in groups):",
        "if sibling.is_dir and sibling.key in keys:",
        (f"{S}/test_partial.py::test_slice_decides_what_the_whole_index_decides",),
    ),
    Mutation(
        "mirror-slice-forgets-unsettled",
        "a conflict left alone is looked at again by the next incremental run",
        "sync/engine.py",
        "    recheck = index.recheck_keys() if look_again else set()\n",
        "    recheck: set[str] = set()\n",
        (f"{S}/test_partial.py::test_slice_decides_what_the_whole_index_decides",),
    ),
    Mutation(
        "streamed-reconcile-guards-late",
        "a streamed full_rescan or reset reconcile checks its deletes before writing anything",
        "sync/streamed.py",
        "        doomed = index.unlisted_managed_files() if o.delete_stale else 0\n",
        "        doomed = 0\n",
        (f"{S}/test_streamed_listing.py::test_a_streamed_reconcile_checks_its_deletes_before_making_any",),
    ),
    Mutation(
        "streamed-reconcile-deletes-after-error",
        "a streamed reconcile deletes nothing and keeps the cursor after a failed action",
        "sync/streamed.py",
        "        if report.errors:  # as in any run",
        "        if False:  # as in any run",
        (
            f"{S}/test_streamed_listing.py::test_a_reconcile_with_an_error_deletes_nothing_and_keeps_the_cursor",
        ),
    ),
    Mutation(
        "streamed-first-run-forgets-failed-keys",
        "a key that failed in a streamed first run is tried again by the next run",
        "sync/engine.py",
        "        unsettled |= failed\n",
        "        pass\n",
        (f"{S}/test_streamed_listing.py::test_a_failed_file_does_not_hold_back_the_pages_after_it",),
    ),
    Mutation(
        "zip-member-no-hash-check",
        "a file taken from a folder zip has the listed content hash",
        "sync/apply.py",
        "            if digest != a.content_hash:\n",
        "            if False:\n",
        (
            f"{S}/test_zipped_downloads.py::test_a_member_that_does_not_match_the_listing_is_downloaded_on_its_own",
        ),
    ),
    Mutation(
        "zip-member-no-mtime",
        "a file taken from a folder zip gets Dropbox's client_modified as its mtime, like a downloaded one",
        "sync/apply.py",
        '            set_client_modified(tmp, {"client_modified": a.modified})\n',
        "            pass\n",
        (f"{S}/test_zipped_downloads.py::test_a_zipped_first_run_leaves_what_one_request_per_file_leaves",),
    ),
    Mutation(
        "zip-no-size-bound",
        "a folder zip holding much more than the files wanted from it is dropped, not read whole",
        "client/batch.py",
        "if max_bytes is not None and got > max_bytes:",
        "if False:",
        (f"{S}/test_zipped_downloads.py::test_a_zipped_first_run_leaves_what_one_request_per_file_leaves",),
    ),
    Mutation(
        "two-way-folder-delete-takes-remote-edits",
        "a folder deleted locally never deletes what was created or edited in it on Dropbox",
        "sync/two_way/decide.py",
        'if a.op == "delete_remote" and a.is_dir and any(is_under(k, a.key) for k in arrived)',
        "if False",
        (f"{S}/two_way/test_engine.py::test_a_folder_deleted_locally_keeps_what_changed_in_it_on_dropbox",),
    ),
    Mutation(
        "two-way-focus-no-widening",
        "a named path whose folder is new or gone brings the whole folder into a focused run",
        "sync/two_way/focus.py",
        "                top = i\n",
        "                top = len(parts)\n",
        (
            f"{S}/two_way/test_focused_runs.py::test_a_named_file_in_a_new_or_moved_folder_brings_the_whole_folder",
        ),
    ),
    Mutation(
        "two-way-focus-forgets-failed-paths",
        "the paths a failed focused run was told are looked at again by the next run",
        "sync/two_way/engine.py",
        "        focus.remember(index, looking_at)",
        "        pass",
        (f"{S}/two_way/test_focused_runs.py::test_what_a_failed_focused_run_was_told_is_looked_at_again",),
    ),
    Mutation(
        "two-way-focus-guard-blind",
        "deletes on Dropbox with no local file in view make a focused run look at the whole folder",
        "sync/two_way/engine.py",
        "    if looking_at is not None and _needs_whole_view(actions, scan):",
        "    if False:",
        (
            f"{S}/two_way/test_focused_runs.py::test_a_named_delete_reaches_dropbox_when_other_files_are_still_there",
        ),
    ),
    Mutation(
        "two-way-dropbox-case-into-new-local-folder",
        "a file Dropbox names under another case of an existing local folder goes into that folder",
        "sync/two_way/apply.py",
        "        if not parent or os.path.isdir(self.lpath(parent)):",
        "        if True:",
        (
            f"{S}/two_way/test_engine.py::test_a_dropbox_file_under_another_case_of_a_local_folder_lands_in_it",
        ),
    ),
    Mutation(
        "two-way-delete-without-rev",
        "a local delete never deletes a Dropbox edit made after the run listed its changes",
        "sync/two_way/apply.py",
        "run.client.delete(run.rpath(a.path), parent_rev=rev)",
        "run.client.delete(run.rpath(a.path))",
        (f"{S}/two_way/test_engine.py::test_a_remote_edit_made_after_the_listing_is_never_deleted",),
    ),
    Mutation(
        "two-way-case-rename-only-recorded",
        "a local case-only rename of a file reaches Dropbox",
        "sync/two_way/decide.py",
        "            if renamed is not None:\n",
        "            if False:\n",
        (f"{S}/two_way/test_engine.py::test_a_local_case_only_rename_of_a_file_reaches_dropbox",),
    ),
    Mutation(
        "two-way-upload-overwrites-concurrent-edit",
        "an upload of a local edit never overwrites a Dropbox edit it has not seen",
        "sync/two_way/apply.py",
        'mode: Any = {"update": base.rev} if base and not base.is_dir and base.rev else "add"',
        'mode: Any = "overwrite"',
        (f"{S}/two_way/test_engine.py::test_a_concurrent_remote_edit_is_never_overwritten",),
    ),
    Mutation(
        "mirror-dry-run-applies",
        "dry_run=True returns the plan and changes nothing",
        "sync/engine.py",
        "    if o.dry_run:\n        return\n",
        "",
        (f"{S}/test_engine.py::test_dry_run_changes_nothing",),
    ),
    Mutation(
        "mirror-dotdot-names",
        "'..' and '.' names are refused (nothing written outside the destination)",
        "sync/paths.py",
        'if name in ("", ".", ".."):',
        'if name == "":',
        (f"{S}/test_engine.py::test_hostile_remote_names_cannot_escape",),
    ),
    Mutation(
        "mirror-symlink-escape",
        "a symlink pointing out of the mirror cannot redirect a write or delete",
        "sync/paths.py",
        "if not _inside(parent_real, root_real):",
        "if False:",
        (f"{S}/test_engine.py::test_symlink_escape_is_refused",),
    ),
    Mutation(
        "mirror-deletes-locally-modified",
        "a locally modified file whose remote was deleted is kept (conflicted copy), not deleted",
        "sync/plan.py",
        "elif self.adopt_local or self.local_hash(p, f, m) == m.content_hash:",
        "elif True:",
        (
            f"{S}/test_engine.py::test_locally_modified_file_is_not_destroyed",
            f"{S}/test_plan.py::test_locally_modified_managed_file",
        ),
    ),
    Mutation(
        "mirror-overwrites-unmanaged",
        "files the mirror did not create are left alone",
        "sync/plan.py",
        "if self.adopt_local:\n            return True",
        "if True:\n            return True",
        (
            f"{S}/test_engine.py::test_unmanaged_local_files_are_left_alone",
            f"{S}/test_plan.py::test_unmanaged_file_in_the_way",
        ),
    ),
    Mutation(
        "mirror-lock-steals-live-lock",
        "a lock held by a live run is not taken over (only a stale one is)",
        "sync/lock.py",
        "if stale and self._take_over(info):",
        "if self._take_over(info):",
        (
            f"{S}/test_engine.py::test_lock_held_then_stale_lock_taken_over",
            f"{S}/test_engine.py::test_two_runs_never_apply_at_once",
        ),
    ),
    Mutation(
        "mirror-lock-not-exclusive",
        "the lock file is created exclusively, so two runs never apply at once",
        "sync/lock.py",
        "fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)",
        "fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)",
        (
            f"{S}/test_engine.py::test_lock_held_then_stale_lock_taken_over",
            f"{S}/test_engine.py::test_two_runs_never_apply_at_once",
        ),
    ),
    Mutation(
        "download-no-hash-check",
        "every download is verified against content_hash; a corrupt one leaves the old file",
        "client/download.py",
        "if actual != expected:",
        "if False:",
        ("tests/client/test_faults.py::test_corrupt_download_leaves_old_file_and_no_temp",),
    ),
    Mutation(
        "download-short-body-accepted",
        "a body that ends early is noticed and resumed, never put in place",
        "client/download.py",
        "if part.pos < part.end:",
        "if False:",
        (f"{G}/test_download_guarantees.py",),
    ),
    Mutation(
        "sensor-forgets-previous-cursor",
        "the sensor continues from its previous successful run's cursor",
        "sensors/dropbox.py",
        "if self.use_previous_cursor:",
        "if False:",
        ("tests/sensors/test_sensor_dags.py::test_sensor_reports_change_and_continues_from_its_cursor",),
    ),
    Mutation(
        "watcher-saves-no-cursor",
        "the AssetWatcher keeps its cursor in the asset state store (a restart neither replays nor loses)",
        "triggers/dropbox.py",
        "await accessor.aset(key, value)",
        "pass",
        ("tests/triggers/test_dropbox_triggers.py::test_event_trigger_restart_neither_replays_nor_loses",),
    ),
    Mutation(
        "retry-ignores-retry-after",
        "a 429 waits at least the server's Retry-After",
        "client/retry.py",
        "wait = max(wait, server_wait or 0.0)",
        "wait = wait",
        ("tests/client/test_faults.py::test_wait_on_429_honours_retry_after",),
    ),
    Mutation(
        "retry-no-5xx",
        "5xx answers are retried",
        "client/retry.py",
        "return isinstance(exc, (RateLimitError, ServerError, *_TRANSIENT_IO))",
        "return isinstance(exc, (RateLimitError, *_TRANSIENT_IO))",
        ("tests/client/test_faults.py::test_everything_completes_under_mixed_faults",),
    ),
    Mutation(
        "auth-no-refresh-on-expired-401",
        "an expired_access_token answer refreshes once and repeats the call",
        "client/api.py",
        "self.auth.token_expired(token)\n                    continue",
        "raise error",
        ("tests/client/test_auth.py::test_refresh_once_on_expired_401",),
    ),
    Mutation(
        "hook-no-token-mask",
        "every access token the sync hook obtains is masked in task logs",
        "hooks/dropbox.py",
        "for form in secret_forms(token):\n        mask_secret(form)",
        "for form in secret_forms(token):\n        pass",
        ("tests/hooks/test_dropbox_hook.py::test_new_access_tokens_are_masked",),
    ),
)


# ---------------------------------------------------------------------------------------------- running


def scratch_copy(dest: Path) -> None:
    """Copy the working tree (tracked and untracked, not ignored) to ``dest``; .venv stays where it is."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    for rel in sorted(set(out.decode().split("\0")) - {""}):
        src = REPO / rel
        if not src.is_file():  # deleted in the working tree
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def check_anchors(root: Path, mutations: tuple[Mutation, ...]) -> list[str]:
    """Problems with anchors (file missing, snippet absent or not unique); empty when all apply."""
    problems = []
    for m in mutations:
        path = root / PKG / m.file
        if not path.is_file():
            problems.append(f"{m.name}: {PKG}/{m.file} does not exist")
            continue
        count = path.read_text().count(m.old)
        if count != 1:
            what = "not found" if count == 0 else f"found {count} times"
            problems.append(f"{m.name}: anchor {what} in {PKG}/{m.file}: {m.old!r}")
    return problems


def env_for(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(scratch)
    env.pop("PYTHONHOME", None)
    return env


def check_import(python: str, scratch: Path) -> None:
    out = subprocess.run(
        [python, "-c", f"import {PKG}; print({PKG}.__file__)"],
        cwd=scratch,
        env=env_for(scratch),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(out).resolve().is_relative_to(scratch.resolve()):
        sys.exit(f"mutation_check: the scratch copy is not what gets imported ({out}); aborting")


def run_tests(python: str, scratch: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str]:
    cmd = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", *tests]
    try:
        proc = subprocess.run(
            cmd, cwd=scratch, env=env_for(scratch), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    # The failing test and its reason say *why* a mutation was caught (not, say, an unrelated crash).
    failed = [line for line in lines if line.startswith(("FAILED tests", "ERROR tests"))]
    summary = lines[-1] if lines else ""
    return proc.returncode, (f"{summary}\n{'':>12}{failed[0][:300]}" if failed else summary)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", action="append", default=[], help="only mutations whose name contains this")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--anchors", action="store_true", help="only check that every anchor applies")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the tests")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run")
    ap.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    ns = ap.parse_args()

    chosen = tuple(m for m in MUTATIONS if not ns.k or any(k in m.name for k in ns.k))
    if not chosen:
        print("mutation_check: no mutation matches", ns.k)
        return 2
    if ns.list:
        for m in chosen:
            print(f"{m.name}\n    guarantee: {m.guarantee}\n    patch:     {PKG}/{m.file}")
            for t in m.tests:
                print(f"    test:      {t}")
        return 0
    problems = check_anchors(REPO, chosen)
    if problems:
        print(
            "mutation_check: these anchors no longer apply (update MUTATIONS in scripts/mutation_check.py):"
        )
        for p in problems:
            print("  -", p)
        return 2
    if ns.anchors:
        print(f"mutation_check: all {len(chosen)} anchors apply")
        return 0

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as tmp:
        scratch = Path(tmp) / "repo"
        scratch_copy(scratch)
        check_import(ns.python, scratch)
        if not ns.no_baseline:
            tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            t0 = time.monotonic()
            rc, last = run_tests(ns.python, scratch, tests, ns.timeout * 2)
            print(
                f"baseline (no mutation), {len(tests)} test selections: rc={rc} {last} "
                f"[{time.monotonic() - t0:.0f} s]",
                flush=True,
            )
            if rc != 0:
                print("mutation_check: the tests fail without any mutation; fix that first")
                return 1
        results: list[tuple[Mutation, str]] = []
        for m in chosen:
            path = scratch / PKG / m.file
            original = path.read_text()
            path.write_text(original.replace(m.old, m.new, 1))
            t0 = time.monotonic()
            try:
                rc, last = run_tests(ns.python, scratch, m.tests, ns.timeout)
            finally:
                path.write_text(original)
            # pytest: 1 = tests failed (caught), 0 = all passed (survived); anything else is an error
            # (collection error, usage, timeout), which proves nothing.
            verdict = {0: "SURVIVED", 1: "caught"}.get(rc, f"ERROR (pytest rc={rc})")
            results.append((m, verdict))
            print(f"{verdict:>10}  {m.name:<40} [{time.monotonic() - t0:.0f} s] {last}", flush=True)
    bad = [(m, v) for m, v in results if v != "caught"]
    print(
        f"\n{len(results) - len(bad)} of {len(results)} mutations caught "
        f"in {time.monotonic() - started:.0f} s"
    )
    for m, v in bad:
        print(f"  {v}: {m.name} ({m.guarantee})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
