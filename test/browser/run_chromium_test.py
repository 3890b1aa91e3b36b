#!/usr/bin/env python3
"""Interop test: headless Chromium against uvwt-server.

usage: run_chromium_test.py UVWT_SERVER [--log-dir DIR] [--chromium PATH]
                            [--net-log] [--timeout SECS]

Starts uvwt-server on a free port (127.0.0.1 and ::1), serves wt_test.html
from a small HTTP server on 127.0.0.1, opens it in headless Chromium and
collects the page's checks. Prints every check as PASS/FAIL; exit status 0
only if all passed. tools/bootstrap installs Chromium, so a missing Chromium,
or one that does not start, is a failure with the reason, never a skip. To
leave the test out, configure with -Dbrowser_tests=disabled (README, Tests).
"""

import argparse
import http.server
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE_FILES = {'/wt_test.html': 'text/html', '/wt_test.js': 'text/javascript'}
PRINT_LOCK = threading.Lock()  # the HTTP handler threads print too
STARTED = []  # (process, own process group) of everything this runner started


class Results:
    def __init__(self):
        self.done = threading.Event()
        self.checks = []
        self.page_log = []
        self.page_loaded = threading.Event()


def make_handler(results):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path = urllib.parse.urlparse(self.path).path
            if path not in PAGE_FILES:
                self.send_error(404)
                return
            with open(os.path.join(HERE, path.lstrip('/')), 'rb') as f:
                body = f.read()
            results.page_loaded.set()
            self.send_response(200)
            self.send_header('content-type', PAGE_FILES[path])
            self.send_header('content-length', str(len(body)))
            self.send_header('cache-control', 'no-store')
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get('content-length', '0'))
            try:
                body = json.loads(self.rfile.read(length) or b'{}')
            except ValueError:
                body = {}
            if self.path == '/log':
                msg = str(body.get('msg', ''))
                results.page_log.append(msg)
                with PRINT_LOCK:
                    print('page: ' + msg, flush=True)
            elif self.path == '/result':
                results.checks = body.get('checks', [])
                results.done.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    return Handler


def start_server(exe, log_dir, env):
    """Starts uvwt-server; returns (process, port, base64 hash, stdout lines)."""
    err = open(os.path.join(log_dir, 'chromium-test-uvwt-server.log'), 'wb')
    proc = subprocess.Popen([exe, '--port', '0', '--exit-after', '300'], stdout=subprocess.PIPE,
                            stderr=err, env=env)
    STARTED.append((proc, False))
    lines = queue.Queue()

    def pump():
        for raw in proc.stdout:
            lines.put(raw.decode(errors='replace').rstrip('\n'))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    port = cert = None
    seen = []
    deadline = time.monotonic() + 15
    while port is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if line.startswith('cert-sha256-b64: '):
            cert = line.split(': ', 1)[1].strip()
        elif line.startswith('listening: '):
            port = int(line.split(': ', 1)[1])
    return proc, port, cert, seen, lines


def stop_process_group(proc, grace):
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return proc.wait()


def tail(path, lines=30):
    try:
        with open(path, 'rb') as f:
            data = f.read().decode(errors='replace').splitlines()
    except OSError:
        return ''
    return '\n'.join(data[-lines:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('server')
    ap.add_argument('--log-dir', default=None)
    ap.add_argument('--chromium', default='/usr/bin/chromium')
    # Accepted for older build directories; Chromium is always required now.
    ap.add_argument('--require-chromium', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--net-log', action='store_true',
                    help='also write a Chromium net log (also with UVWT_CHROMIUM_NETLOG=1)')
    ap.add_argument('--timeout', type=float, default=60)
    args = ap.parse_args()

    failures = []

    def verdict(name, ok, detail=''):
        with PRINT_LOCK:
            print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        if not ok:
            failures.append(name)

    if not (os.path.isfile(args.chromium) and os.access(args.chromium, os.X_OK)):
        verdict('chromium found', False, f'no executable Chromium at {args.chromium}: run tools/bootstrap '
                '(it installs Debian\'s chromium), pass --chromium PATH, or configure with '
                '-Dbrowser_tests=disabled to leave this test out')
        return 1
    try:
        probe = subprocess.run([args.chromium, '--version'], capture_output=True, timeout=30,
                               stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        verdict('chromium starts', False, f'{args.chromium} --version: {e}')
        return 1
    version = probe.stdout.decode(errors='replace').strip()
    if probe.returncode != 0 or not version:
        verdict('chromium starts', False, f'{args.chromium} --version exited {probe.returncode}: '
                + (probe.stderr.decode(errors='replace').strip()[-2000:] or 'no output'))
        return 1
    verdict('chromium starts', True, version)

    log_dir = args.log_dir or tempfile.gettempdir()
    os.makedirs(log_dir, exist_ok=True)
    env = dict(os.environ)
    env.setdefault('UVWT_LOG', 'info')

    server, wt_port, cert_b64, server_lines, server_out = start_server(args.server, log_dir, env)
    if wt_port is None or cert_b64 is None:
        stop_process_group_single(server)
        verdict('uvwt-server started', False, 'no "listening:" line; output: ' + ' | '.join(server_lines)
                + '\n' + tail(os.path.join(log_dir, 'chromium-test-uvwt-server.log')))
        return 1
    verdict('uvwt-server started', True, f'port {wt_port}')

    results = Results()
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), make_handler(results))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    page = (f'http://127.0.0.1:{httpd.server_address[1]}/wt_test.html?'
            + urllib.parse.urlencode({'port': wt_port, 'hash': cert_b64}))

    profile = tempfile.mkdtemp(prefix='uvwt-chromium-')
    chromium_err_path = os.path.join(log_dir, 'chromium-test-chromium.log')
    cmd = [args.chromium, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           f'--user-data-dir={profile}', '--enable-quic', f'--origin-to-force-quic-on=localhost:{wt_port}']
    if args.net_log or os.environ.get('UVWT_CHROMIUM_NETLOG') == '1':
        cmd.append('--log-net-log=' + os.path.join(log_dir, 'chromium-test-netlog.json'))
    cmd.append(page)
    chromium_err = open(chromium_err_path, 'wb')
    chromium = subprocess.Popen(cmd, stdout=chromium_err, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    STARTED.append((chromium, True))
    started = time.monotonic()
    exited_early = None
    while not results.done.wait(0.2):
        if chromium.poll() is not None:
            exited_early = chromium.returncode
            results.done.wait(1)  # a result already on its way still counts
            break
        if time.monotonic() - started > args.timeout:
            break
    elapsed = time.monotonic() - started

    stop_process_group(chromium, 5)
    chromium_err.close()
    httpd.shutdown()
    httpd.server_close()
    shutil.rmtree(profile, ignore_errors=True)

    if results.done.is_set():
        verdict('page reported', True, f'after {elapsed:.1f} s')
        if not results.checks:
            verdict('page checks', False, 'the page reported no checks')
        for c in results.checks:
            verdict(c.get('name', '?'), bool(c.get('ok')), str(c.get('detail', '')))
    elif exited_early is not None:
        verdict('chromium exited', False, f'exit status {exited_early} before the page reported; stderr tail:\n'
                + tail(chromium_err_path))
    else:
        verdict('page reported', False,
                f"no result within {args.timeout:.0f} s (page {'loaded' if results.page_loaded.is_set() else 'never loaded'}"
                + (f", last page log: {results.page_log[-1]!r}" if results.page_log else '')
                + '); chromium stderr tail:\n' + tail(chromium_err_path))

    # The server shuts down gracefully on SIGTERM: exit 0, every handle closed.
    server.send_signal(signal.SIGTERM)
    try:
        rc = server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        rc = server.wait()
        verdict('uvwt-server graceful exit', False, 'still running 15 s after SIGTERM')
    else:
        verdict('uvwt-server graceful exit', rc == 0, f'exit status {rc}'
                + ('' if rc == 0 else '\n' + tail(os.path.join(log_dir, 'chromium-test-uvwt-server.log'))))
    while True:
        try:
            line = server_out.get_nowait()
        except queue.Empty:
            break
        if line:
            print('server: ' + line)

    print(f"logs: {chromium_err_path}, {os.path.join(log_dir, 'chromium-test-uvwt-server.log')}")
    if failures:
        print(f'{len(failures)} check(s) failed: ' + ', '.join(failures))
        return 1
    print('all checks passed')
    return 0


def stop_process_group_single(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def cleanup():
    for proc, group in STARTED:
        if proc.poll() is None:
            if group:
                stop_process_group(proc, 2)
            else:
                proc.kill()
                proc.wait()


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sys.exit(main())
    finally:
        cleanup()
