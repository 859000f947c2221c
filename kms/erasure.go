package kms

import "context"

// OpDestroyDataKey is the dual-control operation of a data key erasure
// requested through an API (a per-patient erasure, `$erase`): approvals name
// the data key id (DataKeyID) as Key and version 0.
const OpDestroyDataKey = "destroy-data-key"

// DestroyDataKeyApproved is DestroyDataKey under dual control: approvals of
// two different enrolled custodians for OpDestroyDataKey on the data key's
// id are checked (and spent) first. It is what an erasure API calls; the
// unapproved DestroyDataKey stays for operators and internal cleanup.
func (m *Manager) DestroyDataKeyApproved(ctx context.Context, hospital string, kind DataKind, name string, approvals []Approval) error {
	id, err := DataKeyID(hospital, kind, name)
	if err != nil {
		return err
	}
	if _, err := m.checkApprovals(ctx, OpDestroyDataKey, id, 0, "", approvals); err != nil {
		return m.record(ctx, Op{Action: "destroy-data-key", Key: id}, err)
	}
	return m.DestroyDataKey(ctx, hospital, kind, name)
}
