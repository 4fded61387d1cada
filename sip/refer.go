package sip

import (
	sipmsg "github.com/emiago/sipgo/sip"
)

// onNotify answers NOTIFYs for our REFER subscriptions.
func (s *Server) onNotify(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	s.inDialogOnly(req, tx)
}
