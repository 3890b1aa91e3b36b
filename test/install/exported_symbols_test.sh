#!/usr/bin/env bash
# The shared library exports the public API and nothing else
# (docs/architecture.md, "Public surface"): every dynamic symbol it defines
# demangles into namespace uvwt (type_info, vtables and thunks of uvwt
# classes included), none into uvwt::detail, every symbol listed below is
# there, and the soname carries UVWT_ABI_VERSION.
set -euo pipefail
lib=$1
abi=$2
fail=0
symbols=$(nm -D --defined-only "$lib" | awk '{ $1 = ""; $2 = ""; sub(/^  /, ""); print }' | c++filt)
count=$(printf '%s\n' "$symbols" | grep -c .)
echo "$lib: $count exported symbols"
# The linker's own markers are not part of any API.
bad=$(printf '%s\n' "$symbols" | grep -vE '^(_edata|_end|__bss_start|_init|_fini)$' |
  sed -E 's/^(typeinfo name for|typeinfo for|vtable for|VTT for|construction vtable for|non-virtual thunk to|virtual thunk to|covariant return thunk to|guard variable for) //' |
  grep -vE '^uvwt::' || true)
detail=$(printf '%s\n' "$symbols" | grep -E '(^| )uvwt::detail::' || true)
if [ -n "$bad" ]; then
  echo "exported outside namespace uvwt:"; printf '  %s\n' "$bad" | head -40; fail=1
fi
if [ -n "$detail" ]; then
  echo "exported from uvwt::detail:"; printf '  %s\n' "$detail" | head -40; fail=1
fi
# One public entry point per header, and the type_info applications need for
# dynamic_cast across the library boundary.
for want in 'uvwt::version()' 'uvwt::abi_version()' 'uvwt::errc_name(uvwt::Errc)' \
  'uvwt::code_space_name(uvwt::CodeSpace)' 'uvwt::Error::to_string' \
  'uvwt::Client::create(' 'uvwt::Server::create(' 'uvwt::Connection::create_client(' \
  'uvwt::ReconnectingClient::create(' 'uvwt::Browser::create(' 'uvwt::ClientFleet::create(' \
  'uvwt::ConnectionLoadBalancer::create(' 'uvwt::UdpProxy::create(' 'uvwt::ClientConfig::validate() const' \
  'uvwt::ServerConfig::validate() const' 'uvwt::parse_webtransport_url(' 'uvwt::get_webtransport_stats(' \
  'uvwt::generate_self_signed_certificate(' 'uvwt::set_log_hook(' 'uvwt::Address::to_string' \
  'typeinfo for uvwt::Session' 'typeinfo for uvwt::Stream' 'typeinfo for uvwt::Connection'; do
  if ! printf '%s\n' "$symbols" | grep -qF -- "$want"; then
    echo "missing public symbol: $want"; fail=1
  fi
done
soname=$(readelf -d "$lib" | sed -nE 's/.*Library soname: \[(.*)\].*/\1/p')
if [ "$soname" != "libuvwt.so.$abi" ]; then
  echo "soname is '$soname', expected libuvwt.so.$abi (UVWT_ABI_VERSION)"; fail=1
fi
exit $fail
