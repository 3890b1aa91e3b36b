#pragma once

// Every HTTP/3 and WebTransport codepoint uvwt uses, in one place
// (docs/protocol.md, "Codepoints"). The comment after each gives its spec name.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <uvwt/error.hpp>

namespace uvwt::detail {

// ---- SETTINGS identifiers
inline constexpr std::uint64_t kSettingsQpackMaxTableCapacity = 0x01;     // SETTINGS_QPACK_MAX_TABLE_CAPACITY
inline constexpr std::uint64_t kSettingsMaxFieldSectionSize = 0x06;       // SETTINGS_MAX_FIELD_SECTION_SIZE
inline constexpr std::uint64_t kSettingsQpackBlockedStreams = 0x07;       // SETTINGS_QPACK_BLOCKED_STREAMS
inline constexpr std::uint64_t kSettingsEnableConnectProtocol = 0x08;     // SETTINGS_ENABLE_CONNECT_PROTOCOL
inline constexpr std::uint64_t kSettingsH3Datagram = 0x33;                // SETTINGS_H3_DATAGRAM (RFC 9297)
inline constexpr std::uint64_t kSettingsH3DatagramDraft04 = 0xffd277;     // pre-RFC H3_DATAGRAM
inline constexpr std::uint64_t kSettingsEnableWebtransport = 0x2b603742;  // SETTINGS_ENABLE_WEBTRANSPORT (draft-02)
inline constexpr std::uint64_t kSettingsWebtransportMaxSessionsDraft07 = 0xc671706a;  // draft-07..12
inline constexpr std::uint64_t kSettingsWtMaxSessions = 0x14e9cd29;        // SETTINGS_WT_MAX_SESSIONS (-13/14)
inline constexpr std::uint64_t kSettingsWtEnabled = 0x2c7cf000;            // SETTINGS_WT_ENABLED (-15/16)
inline constexpr std::uint64_t kSettingsWtInitialMaxData = 0x2b61;         // SETTINGS_WT_INITIAL_MAX_DATA
inline constexpr std::uint64_t kSettingsWtInitialMaxStreamsUni = 0x2b64;   // SETTINGS_WT_INITIAL_MAX_STREAMS_UNI
inline constexpr std::uint64_t kSettingsWtInitialMaxStreamsBidi = 0x2b65;  // SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI

// ---- frame types
inline constexpr std::uint64_t kFrameData = 0x00;
inline constexpr std::uint64_t kFrameHeaders = 0x01;
inline constexpr std::uint64_t kFrameCancelPush = 0x03;
inline constexpr std::uint64_t kFrameSettings = 0x04;
inline constexpr std::uint64_t kFramePushPromise = 0x05;
inline constexpr std::uint64_t kFrameGoaway = 0x07;
inline constexpr std::uint64_t kFrameMaxPushId = 0x0d;
// First varint of a WebTransport bidi stream (WEBTRANSPORT_STREAM signal).
inline constexpr std::uint64_t kFrameWebtransportStream = 0x41;

// ---- unidirectional stream types
inline constexpr std::uint64_t kStreamTypeControl = 0x00;
inline constexpr std::uint64_t kStreamTypePush = 0x01;
inline constexpr std::uint64_t kStreamTypeQpackEncoder = 0x02;
inline constexpr std::uint64_t kStreamTypeQpackDecoder = 0x03;
inline constexpr std::uint64_t kStreamTypeWebtransport = 0x54;

// ---- capsule types (RFC 9297 framing on the CONNECT stream)
inline constexpr std::uint64_t kCapsuleDatagram = 0x00;
inline constexpr std::uint64_t kCapsuleCloseSession = 0x2843;            // WT_CLOSE_SESSION
inline constexpr std::uint64_t kCapsuleDrainSession = 0x78ae;            // WT_DRAIN_SESSION
inline constexpr std::uint64_t kCapsuleMaxData = 0x190B4D3D;             // WT_MAX_DATA
inline constexpr std::uint64_t kCapsuleMaxStreamsBidi = 0x190B4D3F;      // WT_MAX_STREAMS (bidi)
inline constexpr std::uint64_t kCapsuleMaxStreamsUni = 0x190B4D40;       // WT_MAX_STREAMS (uni)
inline constexpr std::uint64_t kCapsuleDataBlocked = 0x190B4D41;         // WT_DATA_BLOCKED
inline constexpr std::uint64_t kCapsuleStreamsBlockedBidi = 0x190B4D43;  // WT_STREAMS_BLOCKED (bidi)
inline constexpr std::uint64_t kCapsuleStreamsBlockedUni = 0x190B4D44;   // WT_STREAMS_BLOCKED (uni)
// Defined by draft-ietf-webtrans-http2 (sections 6.6, 6.9) and prohibited
// over HTTP/3 by draft-ietf-webtrans-http3-14..16 section 5.4.
inline constexpr std::uint64_t kCapsuleMaxStreamData = 0x190B4D3E;      // WT_MAX_STREAM_DATA
inline constexpr std::uint64_t kCapsuleStreamDataBlocked = 0x190B4D42;  // WT_STREAM_DATA_BLOCKED

// ---- HTTP/3 error codes (RFC 9114 section 8.1, RFC 9297)
inline constexpr std::uint64_t kH3NoError = 0x100;               // H3_NO_ERROR
inline constexpr std::uint64_t kH3GeneralProtocolError = 0x101;  // H3_GENERAL_PROTOCOL_ERROR
inline constexpr std::uint64_t kH3InternalError = 0x102;         // H3_INTERNAL_ERROR
inline constexpr std::uint64_t kH3StreamCreationError = 0x103;   // H3_STREAM_CREATION_ERROR
inline constexpr std::uint64_t kH3ClosedCriticalStream = 0x104;  // H3_CLOSED_CRITICAL_STREAM
inline constexpr std::uint64_t kH3FrameUnexpected = 0x105;       // H3_FRAME_UNEXPECTED
inline constexpr std::uint64_t kH3FrameError = 0x106;            // H3_FRAME_ERROR
inline constexpr std::uint64_t kH3ExcessiveLoad = 0x107;         // H3_EXCESSIVE_LOAD
inline constexpr std::uint64_t kH3IdError = 0x108;               // H3_ID_ERROR
inline constexpr std::uint64_t kH3SettingsError = 0x109;         // H3_SETTINGS_ERROR
inline constexpr std::uint64_t kH3MissingSettings = 0x10a;       // H3_MISSING_SETTINGS
inline constexpr std::uint64_t kH3RequestRejected = 0x10b;       // H3_REQUEST_REJECTED
inline constexpr std::uint64_t kH3RequestCancelled = 0x10c;      // H3_REQUEST_CANCELLED
inline constexpr std::uint64_t kH3RequestIncomplete = 0x10d;     // H3_REQUEST_INCOMPLETE
inline constexpr std::uint64_t kH3MessageError = 0x10e;          // H3_MESSAGE_ERROR
inline constexpr std::uint64_t kH3ConnectError = 0x10f;          // H3_CONNECT_ERROR
inline constexpr std::uint64_t kH3VersionFallback = 0x110;       // H3_VERSION_FALLBACK
inline constexpr std::uint64_t kH3DatagramError = 0x33;          // H3_DATAGRAM_ERROR

// ---- WebTransport error codes (HTTP/3 codespace)
inline constexpr std::uint64_t kWtBufferedStreamRejected = 0x3994bd84;  // WT_BUFFERED_STREAM_REJECTED
inline constexpr std::uint64_t kWtSessionGone = 0x170d7b68;             // WT_SESSION_GONE
inline constexpr std::uint64_t kWtFlowControlError = 0x045d4487;        // WT_FLOW_CONTROL_ERROR
inline constexpr std::uint64_t kWtAlpnError = 0x0817b3dd;               // WT_ALPN_ERROR
inline constexpr std::uint64_t kWtRequirementsNotMet = 0x212c0d48;      // WT_REQUIREMENTS_NOT_MET

// The HTTP/3 codes that carry 32-bit WebTransport application codes.
inline constexpr std::uint64_t kWtAppErrorFirst = 0x52e4a40fa8db;
inline constexpr std::uint64_t kWtAppErrorLast = 0x52e5ac983162;

// Reserved GREASE codepoints 0x1f * N + 0x21 (settings, frame, stream and
// error codes share the pattern).
constexpr bool is_h3_grease(std::uint64_t v) noexcept { return v >= 0x21 && (v - 0x21) % 0x1f == 0; }

// 32-bit application error code -> HTTP/3 code: skips the GREASE points
// inside the range, one every 0x1f codes.
constexpr std::uint64_t wt_app_to_h3(std::uint32_t n) noexcept { return kWtAppErrorFirst + n + n / 0x1e; }

// HTTP/3 code -> application code; nullopt outside the range and on GREASE
// points (a reset with such a code carries no application code).
std::optional<std::uint32_t> wt_h3_to_app(std::uint64_t h3) noexcept;

// Spec name of an HTTP/3 or WebTransport error code; empty when unknown.
std::string_view h3_code_name(std::uint64_t h3) noexcept;
// For error messages of resets/stops that carry no application code: the
// code the peer used, e.g. " (WT_SESSION_GONE)"; empty for application codes.
std::string wt_code_suffix(std::uint64_t h3);
// An Error for a reset / STOP_SENDING code received on the wire, in its code
// space: a WebTransport application code decoded (CodeSpace::application),
// a WT_* code (CodeSpace::webtransport) or any other HTTP/3 code (CodeSpace::h3).
Error wire_code_error(Errc errc, std::string message, std::uint64_t h3);

}  // namespace uvwt::detail
