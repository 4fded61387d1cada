// Package media negotiates SDP offer/answer, converts G.711 to 20 ms frames of 8 kHz linear PCM
// and back, and paces a leg's outbound audio; it also reads and writes WAV prompts and
// recordings.
//
// Media may be encrypted with SDES-SRTP: ParseDescription reads RTP/SAVP (and RTP/SAVPF)
// streams and their a=crypto keys (RFC 4568), Negotiate, BuildOffer and ApplyAnswer apply the
// call's SRTPPolicy (off, optional, required; see its doc) with our per-call key
// (AnswerConfig.SRTPKey), and the resulting Negotiated.SRTP keys reach the leg's rtp.Session,
// which encrypts and authenticates every RTP and RTCP packet (suites AES_CM_128_HMAC_SHA1_80
// and _32). Keys are never logged.
package media
