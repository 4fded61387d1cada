// Package media negotiates SDP offer/answer, converts G.711 to 20 ms frames of 8 kHz linear PCM
// and back, and paces a leg's outbound audio; it also reads and writes WAV prompts and
// recordings.
package media
