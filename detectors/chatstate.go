package detectors

import (
	"encoding/binary"
	"fmt"
)

// ChatState is what the chat stream keeps per key: the conversation of the
// reply rules and what the text rules remember of it. They are kept apart
// so that each set of rules owns its own state and encoding.
type ChatState struct {
	Conv Conversation
	Text TextState
}

// chatStateMark starts an encoding that carries text state. A bare
// Conversation encoding starts with its codec version, never this byte,
// so states written before text rules existed (or without text state)
// read back unchanged.
const chatStateMark = 0xA7

// MarshalBinary encodes the state: the conversation's encoding alone when
// the text rules remember nothing, else the mark, the text state's length
// and encoding, then the conversation's.
func (s *ChatState) MarshalBinary() ([]byte, error) {
	conv, err := s.Conv.MarshalBinary()
	if err != nil || s.Text.Empty() {
		return conv, err
	}
	t := s.Text.AppendBinary(make([]byte, 0, 64))
	b := make([]byte, 0, 1+binary.MaxVarintLen32+len(t)+len(conv))
	b = append(b, chatStateMark)
	b = binary.AppendUvarint(b, uint64(len(t)))
	b = append(b, t...)
	return append(b, conv...), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote. Shop and Buyer of the
// conversation are kept.
func (s *ChatState) UnmarshalBinary(b []byte) error {
	s.Text = TextState{}
	if len(b) > 0 && b[0] == chatStateMark {
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || uint64(len(b)-1-k) < n {
			return fmt.Errorf("%w: text state length", ErrCorrupt)
		}
		t := b[1+k : 1+k+int(n)]
		rest, err := DecodeTextState(&s.Text, t)
		if err != nil {
			return err
		}
		if len(rest) != 0 {
			return fmt.Errorf("%w: %d bytes after the text state", ErrCorrupt, len(rest))
		}
		b = b[1+k+int(n):]
	}
	return s.Conv.UnmarshalBinary(b)
}
