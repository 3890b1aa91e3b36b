#!/usr/bin/env python3
"""examples/chat in a real browser: headless Chromium or Firefox against chat_server.

usage: run_chat_browser_test.py CHAT_SERVER [--browser chromium|firefox] [--browser-path PATH]
                                [--log-dir DIR] [--timeout SECS]

Starts chat_server on a free port, serves chat_test.html/js (this folder) and
the example's own chat_client.js on 127.0.0.1, opens the page (two ChatRoom
clients on two WebTransport sessions) and prints every check the page reports.
Then SIGTERM: the server must exit 0 with uv_loop_close 0. A missing browser is
a failure, never a skip (as the main browser test; -Dbrowser_tests=disabled
leaves the test out). Firefox is started the way test/browser/run_browser_test.py
starts it (a fresh off-network profile with WebTransport on): that module is
imported, so there is one place that knows Firefox's preferences.
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
EXAMPLE = os.path.join(HERE, '..', '..', 'examples', 'chat')
FILES = {'/chat_test.html': (HERE, 'text/html'), '/chat_test.js': (HERE, 'text/javascript'),
         '/chat_client.js': (EXAMPLE, 'text/javascript')}


def serve(results):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path = urllib.parse.urlparse(self.path).path
            if path not in FILES:
                self.send_error(404)
                return
            folder, ctype = FILES[path]
            with open(os.path.join(folder, path.lstrip('/')), 'rb') as f:
                body = f.read()
            self.send_response(200)
            self.send_header('content-type', ctype + '; charset=utf-8')
            self.send_header('content-length', str(len(body)))
            self.send_header('cache-control', 'no-store')
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get('content-length', '0')))
            try:
                msg = json.loads(body or b'{}')
            except ValueError:
                msg = {}
            if self.path == '/log':
                print('page: ' + str(msg.get('msg', '')), flush=True)
            elif self.path == '/result':
                results.put(msg.get('checks', []))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def start_server(exe):
    proc = subprocess.Popen([exe, '--port', '0'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = queue.Queue()

    def pump():
        for raw in proc.stdout:
            lines.put(raw.decode(errors='replace').rstrip('\n'))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    info, seen = {}, []
    deadline = time.monotonic() + 15
    while not ('listening' in info and 'cert-sha256' in info) and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        key, _, value = line.partition(': ')
        if key in ('listening', 'cert-sha256'):
            info[key] = value.strip()
    return proc, info, seen, lines


def browser_command(args, profile, wt_port, url, log_dir):
    """(command, environment) that open url headless in a fresh profile."""
    if args.browser == 'firefox':
        sys.path.insert(0, os.path.join(HERE, '..', 'browser'))
        import run_browser_test  # noqa: E402 (the shared Firefox launcher)
        ns = argparse.Namespace(browser='firefox', browser_path=args.browser_path, enable_features='',
                                net_log=False, name='chat')
        return run_browser_test.browser_command(ns, profile, wt_port, url, log_dir)
    return ([args.browser_path, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             f'--user-data-dir={profile}', '--enable-quic', f'--origin-to-force-quic-on=localhost:{wt_port}', url],
            dict(os.environ))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('server')
    ap.add_argument('--browser', choices=['chromium', 'firefox'], default='chromium')
    ap.add_argument('--browser-path', default=None)
    ap.add_argument('--log-dir', default=tempfile.gettempdir())
    ap.add_argument('--timeout', type=float, default=60)
    args = ap.parse_args()
    if args.browser_path is None:
        args.browser_path = {'chromium': '/usr/bin/chromium', 'firefox': '/usr/bin/firefox-esr'}[args.browser]
    failures = []

    def verdict(name, ok, detail=''):
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        if not ok:
            failures.append(name)

    if not (os.path.isfile(args.browser_path) and os.access(args.browser_path, os.X_OK)):
        verdict(f'{args.browser} found', False, f'no executable at {args.browser_path}: run tools/bootstrap, or '
                'configure with -Dbrowser_tests=disabled to leave this test out')
        return 1

    server, info, seen, server_out = start_server(args.server)
    if not ('listening' in info and 'cert-sha256' in info):
        server.kill()
        verdict('chat_server started', False, ' | '.join(seen))
        return 1
    verdict('chat_server started', True, f"port {info['listening']}")

    results = queue.Queue()
    httpd = serve(results)
    url = (f'http://127.0.0.1:{httpd.server_address[1]}/chat_test.html?'
           + urllib.parse.urlencode({'port': info['listening'], 'hash': info['cert-sha256']}))
    profile = tempfile.mkdtemp(prefix=f'uvwt-chat-{args.browser}-')
    os.makedirs(args.log_dir, exist_ok=True)
    browser_log_path = os.path.join(args.log_dir, f'chat-test-{args.browser}.log')
    browser_log = open(browser_log_path, 'wb')
    cmd, env = browser_command(args, profile, info['listening'], url, args.log_dir)
    browser = subprocess.Popen(cmd, stdout=browser_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env=env, start_new_session=True)
    checks = None
    try:
        checks = results.get(timeout=args.timeout)
    except queue.Empty:
        pass
    finally:
        try:
            os.killpg(browser.pid, signal.SIGTERM)
            browser.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(browser.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            browser.wait()
        browser_log.close()
        httpd.shutdown()
        shutil.rmtree(profile, ignore_errors=True)

    if checks is None:
        verdict('page reported', False, f'no result within {args.timeout:.0f} s; browser log: {browser_log_path}')
    elif not checks:
        verdict('page checks', False, 'the page reported no checks')
    for c in checks or []:
        verdict(c.get('name', '?'), bool(c.get('ok')), str(c.get('detail', '')))

    server.send_signal(signal.SIGTERM)
    try:
        rc = server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        rc = server.wait()
    out = []
    while True:
        try:
            line = server_out.get(timeout=2)
        except queue.Empty:
            break
        if line is None:
            break
        out.append(line)
    for line in out:
        print('server: ' + line)
    verdict('chat_server clean exit on SIGTERM', rc == 0 and 'uv_loop_close: 0 (every handle closed)' in out,
            f'exit status {rc}')
    if failures:
        print(f'{len(failures)} check(s) failed: ' + ', '.join(failures))
        return 1
    print('all checks passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
