package rtp

// Stats is a snapshot of one session's counters.
type Stats struct {
	PacketsSent uint64
	OctetsSent  uint64 // payload octets, as in RTCP
	// PacketsReceived and OctetsReceived count packets delivered to the handler.
	PacketsReceived uint64
	OctetsReceived  uint64
	// PacketsLost is RFC 3550 cumulative loss (expected - received), summed over sources.
	// A packet that arrives too late to deliver still counts as received.
	PacketsLost uint64
	// PacketsDropped counts packets not delivered other than duplicates: malformed, wrong
	// version or payload type, oversize, from an unlatched source, too late, or an
	// unconfirmed sequence jump.
	PacketsDropped uint64
	Duplicates     uint64
	// Reordered counts packets that arrived after a later one: recovered (delivered in
	// order) or too late (also counted as dropped).
	Reordered   uint64
	JitterMs    float64 // RFC 3550 interarrival jitter of the current source
	LastSSRC    uint32
	SSRCChanges uint64
	RTCPSent    uint64
	// RTCPReceived counts datagrams on the RTCP port that parsed as RTCP.
	RTCPReceived uint64
	// SRTPAuthFailures counts SRTP packets dropped because they did not authenticate (bad
	// tag or MKI, too short to carry one); they are in PacketsDropped too. SRTP replays are
	// counted as Duplicates.
	SRTPAuthFailures uint64
	// SRTCPDropped counts RTCP datagrams SRTCP refused: bad tag, replay, malformed.
	SRTCPDropped uint64
}

// Stats returns a snapshot of the counters.
func (s *Session) Stats() Stats {
	var st Stats
	s.tx.mu.Lock()
	st.PacketsSent, st.OctetsSent = s.tx.packets, s.tx.octets
	s.tx.mu.Unlock()

	r := &s.rx
	r.mu.Lock()
	st.PacketsReceived, st.OctetsReceived = r.packets, r.octets
	st.PacketsLost = uint64(max(r.lostBefore+r.seq.lost(), 0))
	st.PacketsDropped = r.dropped
	st.Duplicates = r.duplicates
	st.Reordered = r.reordered
	st.JitterMs = r.jitter.jitter * 1000 / float64(s.clockRate)
	st.LastSSRC = r.ssrc
	st.SSRCChanges = r.ssrcChanges
	st.SRTPAuthFailures = r.authFail
	r.mu.Unlock()

	st.RTCPSent = s.rtcpSent.Load()
	st.RTCPReceived = s.rtcpRecv.Load()
	st.SRTCPDropped = s.srtcpDropped.Load()
	return st
}
