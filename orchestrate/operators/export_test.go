package operators

// SetLineageBatch sets how many lineage documents one GetAll reads, so that
// tests cross batch boundaries with few objects.
func (s *LineageSensor) SetLineageBatch(n int) { s.batch = n }
