#!/usr/bin/env python3
"""Interop test: a headless browser (Chromium or Firefox) against uvwt-server.

usage: run_browser_test.py UVWT_SERVER [--browser chromium|firefox] [--browser-path PATH]
                           [--enable-features LIST] [--expect-dialect NAME]
                           [--server-arg ARG]... [--name NAME] [--log-dir DIR]
                           [--net-log] [--timeout SECS]
                           [--measure-datagrams RUNS [--burst-group N] [--require-whole-bursts]]

Starts uvwt-server on a free port (127.0.0.1 and ::1), serves wt_test.html
from a small HTTP server on 127.0.0.1 that also collects what the page POSTs,
and opens the page in the headless browser with the WebTransport port and the
certificate hash in its query string (no WebDriver). Prints every check as
PASS/FAIL; exit status 0 only if all passed. With --expect-dialect, every
session the server accepted must have negotiated that dialect (uvwt-server
prints it on its "session:" lines).

tools/bootstrap installs both browsers, so a missing browser, or one that does
not start, is a failure with the reason, never a skip. To leave the browser
tests out, configure with -Dbrowser_tests=disabled (README, Tests).

--measure-datagrams RUNS replaces the checks by RUNS sessions that each echo
one burst of 100 datagrams without re-sending, and prints how many of the 100
each run lost (docs/protocol.md, "Datagrams per packet"); with
--require-whole-bursts an echo burst the page did not get whole (any
datagram the server echoed and the page did not see) fails the run.
"""

import argparse
import http.server
import json
import os
import queue
import re
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
DEFAULT_PATHS = {'chromium': '/usr/bin/chromium', 'firefox': '/usr/bin/firefox-esr'}
INSTALL_HINT = {'chromium': "Debian's chromium", 'firefox': "Debian's firefox-esr"}

# Firefox profile: WebTransport with serverCertificateHashes on, and nothing
# that talks to the network on its own (updates, telemetry, safe browsing,
# captive portal and connectivity probes, remote settings, add-on and plugin
# updates, DNS prefetch and DoH, OCSP). Any request that still escapes goes to
# a proxy on a closed loopback port; only the loopback hosts go direct.
FIREFOX_PREFS = {
    'network.webtransport.enabled': True,
    'network.webtransport.datagrams.enabled': True,
    'network.http.http3.enable': True,
    'network.http.http3.enable_0rtt': False,
    'network.proxy.type': 1,
    'network.proxy.http': '127.0.0.1',
    'network.proxy.http_port': 9,
    'network.proxy.ssl': '127.0.0.1',
    'network.proxy.ssl_port': 9,
    'network.proxy.no_proxies_on': 'localhost, 127.0.0.1, ::1',
    'network.proxy.allow_hijacking_localhost': False,
    'network.trr.mode': 5,
    'network.dns.disablePrefetch': True,
    'network.prefetch-next': False,
    'network.predictor.enabled': False,
    'network.http.speculative-parallel-limit': 0,
    'network.captive-portal-service.enabled': False,
    'network.connectivity-service.enabled': False,
    'app.update.auto': False,
    'app.update.enabled': False,
    'app.update.checkInstallTime': False,
    'app.normandy.enabled': False,
    'app.shield.optoutstudies.enabled': False,
    'toolkit.telemetry.enabled': False,
    'toolkit.telemetry.unified': False,
    'toolkit.telemetry.archive.enabled': False,
    'toolkit.telemetry.server': '',
    'datareporting.healthreport.uploadEnabled': False,
    'datareporting.policy.dataSubmissionEnabled': False,
    'browser.ping-centre.telemetry': False,
    'browser.safebrowsing.malware.enabled': False,
    'browser.safebrowsing.phishing.enabled': False,
    'browser.safebrowsing.downloads.enabled': False,
    'browser.safebrowsing.blockedURIs.enabled': False,
    'browser.safebrowsing.provider.google4.updateURL': '',
    'browser.safebrowsing.provider.mozilla.updateURL': '',
    'services.settings.server': 'http://127.0.0.1:9/',
    'security.OCSP.enabled': 0,
    'security.remote_settings.crlite_filters.enabled': False,
    'security.remote_settings.intermediates.enabled': False,
    'extensions.update.enabled': False,
    'extensions.getAddons.cache.enabled': False,
    'extensions.systemAddon.update.enabled': False,
    'extensions.blocklist.enabled': False,
    'media.gmp-manager.url': '',
    'media.gmp-gmpopenh264.enabled': False,
    'browser.region.network.url': '',
    'browser.region.update.enabled': False,
    'browser.search.update': False,
    'browser.discovery.enabled': False,
    'browser.newtabpage.enabled': False,
    'browser.startup.page': 0,
    'browser.startup.homepage_override.mstone': 'ignore',
    'browser.shell.checkDefaultBrowser': False,
    'browser.aboutwelcome.enabled': False,
    'browser.sessionstore.resume_from_crash': False,
    'browser.translations.enabled': False,
    'browser.contentblocking.report.monitor.enabled': False,
    'identity.fxaccounts.enabled': False,
    'geo.enabled': False,
    'toolkit.startup.max_resumed_crashes': -1,
    'dom.ipc.reportProcessHangs': False,
}


class Results:
    def __init__(self):
        self.done = threading.Event()
        self.checks = []
        self.measure = None
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
                results.measure = body.get('measure')
                results.done.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    return Handler


def start_server(exe, extra_args, log_path, env):
    """Starts uvwt-server; returns (process, port, base64 hash, lines seen, line queue)."""
    err = open(log_path, 'wb')
    proc = subprocess.Popen([exe, '--port', '0', '--exit-after', '600'] + extra_args, stdout=subprocess.PIPE,
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
    deadline = time.monotonic() + 30
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


def firefox_user_js():
    out = []
    for k, v in FIREFOX_PREFS.items():
        out.append(f'user_pref({json.dumps(k)}, {json.dumps(v)});')
    return '\n'.join(out) + '\n'


def browser_command(args, profile, wt_port, page, log_dir):
    """The command line and environment that open `page` headless in a fresh profile."""
    env = dict(os.environ)
    if args.browser == 'chromium':
        cmd = [args.browser_path, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
               '--disable-background-networking', '--disable-component-update', '--disable-sync',
               f'--user-data-dir={profile}', '--enable-quic', f'--origin-to-force-quic-on=localhost:{wt_port}']
        if args.enable_features:
            cmd.append('--enable-features=' + args.enable_features)
        if args.net_log or os.environ.get('UVWT_CHROMIUM_NETLOG') == '1':
            cmd.append('--log-net-log=' + os.path.join(log_dir, f'{args.name}-netlog.json'))
        return cmd + [page], env
    with open(os.path.join(profile, 'user.js'), 'w') as f:
        f.write(firefox_user_js())
    # Its own HOME keeps Firefox from touching the user's profiles and caches.
    home = os.path.join(profile, 'home')
    os.makedirs(home, exist_ok=True)
    env.update({'HOME': home, 'MOZ_HEADLESS': '1', 'MOZ_CRASHREPORTER_DISABLE': '1',
                'MOZ_DISABLE_AUTO_SAFE_MODE': '1', 'XDG_CACHE_HOME': os.path.join(home, 'cache')})
    return [args.browser_path, '--headless', '--no-remote', '--profile', profile, page], env


def check_browser(args, verdict):
    """Verdicts on the browser being there and starting; returns its version or None."""
    path = args.browser_path
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        verdict(f'{args.browser} found', False,
                f'no executable {args.browser} at {path}: run tools/bootstrap (it installs '
                f'{INSTALL_HINT[args.browser]}), pass --browser-path PATH, or configure with '
                '-Dbrowser_tests=disabled to leave the browser tests out')
        return None
    try:
        env = dict(os.environ)
        if args.browser == 'firefox':
            env['HOME'] = tempfile.gettempdir()
        probe = subprocess.run([path, '--version'], capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                               env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        verdict(f'{args.browser} starts', False, f'{path} --version: {e}')
        return None
    version = probe.stdout.decode(errors='replace').strip()
    if probe.returncode != 0 or not version:
        verdict(f'{args.browser} starts', False, f'{path} --version exited {probe.returncode}: '
                + (probe.stderr.decode(errors='replace').strip()[-2000:] or 'no output'))
        return None
    verdict(f'{args.browser} starts', True, version)
    return version


def run_browser(args, results, cmd, env, err_path):
    """Runs the browser until the page reports, it exits, or the timeout; returns (elapsed, exit status or None)."""
    err = open(err_path, 'wb')
    proc = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    STARTED.append((proc, True))
    started = time.monotonic()
    exited_early = None
    while not results.done.wait(0.2):
        if proc.poll() is not None:
            exited_early = proc.returncode
            results.done.wait(1)  # a result already on its way still counts
            break
        if time.monotonic() - started > args.timeout:
            break
    elapsed = time.monotonic() - started
    stop_process_group(proc, 10)
    err.close()
    return elapsed, exited_early


def report_page(args, results, verdict, elapsed, exited_early, err_path):
    if results.done.is_set():
        verdict('page reported', True, f'after {elapsed:.1f} s')
        if results.measure is not None:
            return  # reported with the server's counts, once it has exited
        if not results.checks:
            verdict('page checks', False, 'the page reported no checks')
        for c in results.checks:
            verdict(c.get('name', '?'), bool(c.get('ok')), str(c.get('detail', '')))
    elif exited_early is not None:
        verdict(f'{args.browser} exited', False, f'exit status {exited_early} before the page reported; output tail:\n'
                + tail(err_path))
    else:
        verdict('page reported', False,
                f"no result within {args.timeout:.0f} s (page {'loaded' if results.page_loaded.is_set() else 'never loaded'}"
                + (f", last page log: {results.page_log[-1]!r}" if results.page_log else '')
                + f'); {args.browser} output tail:\n' + tail(err_path))


def report_measure(measure, server_lines, verdict, require_whole=False):
    """Per run: echoes lost of 100, split by where (server_lines: its session-end counts).
    require_whole: every burst must have come back complete (docs/protocol.md, "Datagrams in flight")."""
    lost = [int(r.get('lost', -1)) for r in measure]
    ends = [re.search(r'received (\d+) sent (\d+)', l) for l in server_lines if l.startswith('session-end: ')]
    ends = [(int(m.group(1)), int(m.group(2))) for m in ends if m]
    print('datagram-burst lost per run (of 100): ' + ' '.join(str(n) for n in lost))
    if len(ends) == len(lost):
        # The server echoes what it receives: whatever it sent and the page
        # did not see was lost on the way back (in the browser, on loopback).
        print('  of which lost on the way to the server: ' + ' '.join(str(100 - r) for r, _ in ends))
        print('  of which lost on the way back: ' + ' '.join(str(s - (100 - n)) for (_, s), n in zip(ends, lost)))
    bad = [n for n in lost if n != 0]
    print(f'datagram-burst summary: {len(lost)} runs, {len(bad)} with losses'
          + (f', lost {min(bad)}-{max(bad)}' if bad else '') + f', total lost {sum(n for n in lost if n > 0)}')
    verdict('datagram bursts measured', len(lost) > 0 and all(n >= 0 for n in lost), f'{len(lost)} runs')
    if require_whole:
        # What the server echoed must all arrive. What the page's unpaced burst
        # lost on its way out is Firefox's own send queue (it keeps 10 and
        # drops the oldest), reported but not uvwt's to fix.
        back = [s - (100 - n) for (_, s), n in zip(ends, lost)] if len(ends) == len(lost) else []
        whole = len(back) > 0 and all(b == 0 for b in back)
        verdict('every echoed datagram burst arrived whole', whole,
                f'{sum(1 for b in back if b == 0)} of {len(lost)} echo bursts complete'
                + ('' if back else f' (server counted {len(ends)} sessions for {len(lost)} runs)'))


def check_dialect(expected, server_lines, verdict):
    """Every session the server accepted must have negotiated `expected`."""
    dialects = [m.group(1) for m in (re.search(r' dialect (\S+)', l) for l in server_lines
                                     if l.startswith('session: ')) if m]
    ok = bool(dialects) and all(d == expected for d in dialects)
    verdict(f'server negotiated {expected}', ok,
            f'{len(dialects)} session(s): ' + (', '.join(sorted(set(dialects))) or 'none'))


def stop_server(server, log_path, verdict):
    # The server shuts down gracefully on SIGTERM: exit 0, every handle closed.
    server.send_signal(signal.SIGTERM)
    try:
        rc = server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        verdict('uvwt-server graceful exit', False, 'still running 20 s after SIGTERM')
    else:
        verdict('uvwt-server graceful exit', rc == 0, f'exit status {rc}' + ('' if rc == 0 else '\n' + tail(log_path)))


def drain(q, out):
    while True:
        try:
            line = q.get(timeout=2)
        except queue.Empty:
            return
        if line is None:
            return
        out.append(line)


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument('server')
    ap.add_argument('--browser', choices=['chromium', 'firefox'], default='chromium')
    ap.add_argument('--browser-path', default=None)
    ap.add_argument('--enable-features', default='', help='Chromium --enable-features list')
    ap.add_argument('--expect-dialect', default=None, help='dialect every server session must have negotiated')
    ap.add_argument('--server-arg', action='append', default=[], help='extra uvwt-server argument (repeatable)')
    ap.add_argument('--name', default=None, help='test name for log files (default: the browser)')
    ap.add_argument('--log-dir', default=None)
    ap.add_argument('--net-log', action='store_true',
                    help='Chromium: also write a net log (also with UVWT_CHROMIUM_NETLOG=1)')
    ap.add_argument('--timeout', type=float, default=90)
    ap.add_argument('--measure-datagrams', type=int, default=0, metavar='RUNS')
    ap.add_argument('--burst-group', type=int, default=10, metavar='N',
                    help='measurement: the page pauses 5 ms after every N datagrams (0: never)')
    ap.add_argument('--require-whole-bursts', action='store_true',
                    help='measurement: fail unless every echo the server sent reached the page')
    ap.add_argument('--high-water-mark', type=int, default=0, metavar='N',
                    help='measurement: set datagrams.incomingHighWaterMark where the browser has it')
    # Accepted for older build directories.
    ap.add_argument('--chromium', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--require-chromium', action='store_true', help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.browser_path = args.browser_path or args.chromium or DEFAULT_PATHS[args.browser]
    args.name = args.name or args.browser
    return args


def main():
    args = parse_args()
    failures = []

    def verdict(name, ok, detail=''):
        with PRINT_LOCK:
            print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        if not ok:
            failures.append(name)

    if check_browser(args, verdict) is None:
        return 1
    log_dir = args.log_dir or tempfile.gettempdir()
    os.makedirs(log_dir, exist_ok=True)
    server_log = os.path.join(log_dir, f'{args.name}-test-uvwt-server.log')
    env = dict(os.environ)
    env.setdefault('UVWT_LOG', 'info')
    server, wt_port, cert_b64, server_lines, server_out = start_server(args.server, args.server_arg, server_log, env)
    if wt_port is None or cert_b64 is None:
        if server.poll() is None:
            server.kill()
            server.wait()
        verdict('uvwt-server started', False, 'no "listening:" line; output: ' + ' | '.join(server_lines)
                + '\n' + tail(server_log))
        return 1
    verdict('uvwt-server started', True, f'port {wt_port}')

    results = Results()
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), make_handler(results))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    query = {'port': wt_port, 'hash': cert_b64}
    if args.measure_datagrams > 0:
        query['measure'] = args.measure_datagrams
        query['group'] = args.burst_group
        if args.high_water_mark:
            query['hwm'] = args.high_water_mark
    page = f'http://127.0.0.1:{httpd.server_address[1]}/wt_test.html?' + urllib.parse.urlencode(query)
    profile = tempfile.mkdtemp(prefix=f'uvwt-{args.browser}-')
    err_path = os.path.join(log_dir, f'{args.name}-test-browser.log')
    cmd, benv = browser_command(args, profile, wt_port, page, log_dir)
    elapsed, exited_early = run_browser(args, results, cmd, benv, err_path)
    httpd.shutdown()
    httpd.server_close()
    shutil.rmtree(profile, ignore_errors=True)
    report_page(args, results, verdict, elapsed, exited_early, err_path)

    stop_server(server, server_log, verdict)
    drain(server_out, server_lines)
    for line in server_lines:
        print('server: ' + line)
    if args.expect_dialect:
        check_dialect(args.expect_dialect, server_lines, verdict)
    if results.measure is not None:
        report_measure(results.measure, server_lines, verdict, args.require_whole_bursts)

    print(f'logs: {err_path}, {server_log}')
    if failures:
        print(f'{len(failures)} check(s) failed: ' + ', '.join(failures))
        return 1
    print('all checks passed')
    return 0


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
