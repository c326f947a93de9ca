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
	Eff  EffectiveState
}

// chatStateMark starts an encoding that carries text state. A bare
// Conversation encoding starts with its codec version, never this byte,
// so states written before text rules existed (or without text state)
// read back unchanged.
const chatStateMark = 0xA7

// MarshalBinary encodes the state: the conversation's encoding alone when
// the text rules and the effective-reply count remember nothing, else the
// mark, the length and encoding of the text state, of the effective-reply
// state (each length 0 when empty), then the conversation's.
func (s *ChatState) MarshalBinary() ([]byte, error) {
	conv, err := s.Conv.MarshalBinary()
	if err != nil || s.Text.Empty() && s.Eff.Empty() {
		return conv, err
	}
	var eff []byte
	if !s.Eff.Empty() {
		eff = s.Eff.AppendBinary(make([]byte, 0, 24))
	}
	text := 0
	if !s.Text.Empty() {
		text = s.Text.encodedLen()
	}
	b := make([]byte, 0, 1+2*binary.MaxVarintLen32+text+len(eff)+len(conv))
	b = append(b, chatStateMark)
	// The text state is written in place, its length known beforehand.
	b = binary.AppendUvarint(b, uint64(text))
	if text > 0 {
		b = s.Text.AppendBinary(b)
	}
	b = binary.AppendUvarint(b, uint64(len(eff)))
	b = append(b, eff...)
	return append(b, conv...), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote. Shop and Buyer of the
// conversation are kept.
func (s *ChatState) UnmarshalBinary(b []byte) error {
	s.Text, s.Eff = TextState{}, EffectiveState{}
	if len(b) > 0 && b[0] == chatStateMark {
		b = b[1:]
		for i, decode := range []func([]byte) ([]byte, error){
			func(p []byte) ([]byte, error) { return DecodeTextState(&s.Text, p) },
			func(p []byte) ([]byte, error) { return DecodeEffectiveState(&s.Eff, p) },
		} {
			n, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < n {
				return fmt.Errorf("%w: length of part %d of the chat state", ErrCorrupt, i)
			}
			if p := b[k : k+int(n)]; n > 0 {
				rest, err := decode(p)
				if err != nil {
					return err
				}
				if len(rest) != 0 {
					return fmt.Errorf("%w: %d bytes after part %d of the chat state", ErrCorrupt, len(rest), i)
				}
			}
			b = b[k+int(n):]
		}
	}
	return s.Conv.UnmarshalBinary(b)
}
