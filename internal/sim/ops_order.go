package sim

import (
	_ "embed"
	"encoding/json"
	"mime"
	"time"
)

// Ordering (seed 4.2): the SKU catalogue, CreateInstance and DeleteInstance.

// skuJSON is the seed's BatchShowSku example (shared/fixtures/responses/sku.json), answered as is: its mixed types
// (poolInfo.aosp[].id as string and number) are part of what the client must cope with.
//
//go:embed sku.json
var skuJSON []byte

// catalogue is what CreateInstance checks orders against.
type catalogue struct {
	data    json.RawMessage
	bandSku string
	skus    map[string]map[string]skuEntry // region -> instance sku id -> entry
}

type skuEntry struct {
	id, desc string
}

func loadCatalogue() *catalogue {
	var doc struct {
		Data struct {
			BandInfo struct {
				CbcSkuID string `json:"cbcSkuId"`
			} `json:"bandInfo"`
			List []struct {
				RegionID     string `json:"regionId"`
				SkuResponses []struct {
					CbcSkuID string `json:"cbcSkuId"`
					SpecDesc string `json:"specDesc"`
					CalcSpec string `json:"calcSpec"`
				} `json:"skuResponses"`
			} `json:"skuSpecResponseList"`
		} `json:"data"`
	}
	var raw struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(skuJSON, &doc); err != nil {
		panic("sim: embedded sku.json: " + err.Error())
	}
	_ = json.Unmarshal(skuJSON, &raw)
	cat := &catalogue{data: raw.Data, bandSku: doc.Data.BandInfo.CbcSkuID, skus: map[string]map[string]skuEntry{}}
	for _, r := range doc.Data.List {
		if cat.skus[r.RegionID] == nil {
			cat.skus[r.RegionID] = map[string]skuEntry{}
		}
		for _, sku := range r.SkuResponses {
			desc := sku.SpecDesc
			if desc == "" {
				desc = sku.CalcSpec
			}
			cat.skus[r.RegionID][sku.CbcSkuID] = skuEntry{id: sku.CbcSkuID, desc: desc}
		}
	}
	return cat
}

func (s *Server) batchShowSku(c *call) {
	if t := c.r.URL.Query().Get("type"); t != "0" {
		c.answer(nil, badParam("type is required and must be 0 (general cloud phone)"))
		return
	}
	c.ok(s.cat.data)
}

type createRequest struct {
	OS                 *string      `json:"os"`
	InstanceSkuID      string       `json:"instanceSkuId"`
	BandSkuID          string       `json:"bandSkuId"`
	RegionID           string       `json:"regionId"`
	InstanceNamePrefix string       `json:"instanceNamePrefix"`
	BandSize           *float64     `json:"bandSize"`
	Count              *int         `json:"count"`
	ChargeParam        *chargeParam `json:"chargeParam"`
	Network            *string      `json:"network"`
	// Newer reference, not in the seed.
	CustomImageType *int    `json:"customImageType"` // 0 system, 1 custom, 2 private
	CustomImageID   *int    `json:"customImageId"`
	SpecPoolID      *string `json:"specPoolId"`
	NodeGroupID     *string `json:"nodeGroupId"`
}

type chargeParam struct {
	ChargingMode *int `json:"chargingMode"`
	PeriodType   *int `json:"periodType"`
	PeriodNum    *int `json:"periodNum"`
	IsAutoPay    *int `json:"isAutoPay"`
	IsAutoRenew  *int `json:"isAutoRenew"`
}

// order is a CreateInstance: paid at once with isAutoPay=1, else waiting for the tenant to pay.
type order struct {
	id     string
	paid   bool
	phones []*phone
}

type createData struct {
	OrderID       string         `json:"orderId"`
	InstanceInfos []instanceInfo `json:"instanceInfos"`
}

type instanceInfo struct {
	InstanceID   string `json:"instanceId"`
	InstanceName string `json:"instanceName"`
}

// checkCreate validates an order in the order the seed's codes suggest: shape (1000), os (3003, 1000), charging
// (1000, 3006, 3007); catalogue checks come later, under the lock.
func checkCreate(req *createRequest) *apiError {
	if req.OS == nil || *req.OS == "" {
		return errCode(codeNoOS)
	}
	if *req.OS != "AOSP9" && *req.OS != "AOSP11" {
		return badParam("os must be AOSP9 or AOSP11")
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"instanceSkuId", req.InstanceSkuID, 64}, {"bandSkuId", req.BandSkuID, 64}, {"regionId", req.RegionID, 64},
		{"instanceNamePrefix", req.InstanceNamePrefix, 14}} {
		if f.v == "" || len(f.v) > f.max {
			return badParam("%s is required, at most %d characters", f.name, f.max)
		}
	}
	if req.BandSize == nil || *req.BandSize <= 0 {
		return badParam("bandSize is required and must be positive (Mbit/s)")
	}
	if req.Count == nil || *req.Count < 1 || *req.Count > 1500 {
		return badParam("count must be 1..1500")
	}
	if e := checkCreateNewer(req); e != nil {
		return e
	}
	cp := req.ChargeParam
	if cp == nil || cp.ChargingMode == nil || cp.PeriodType == nil || cp.PeriodNum == nil {
		return badParam("chargeParam with chargingMode, periodType and periodNum is required")
	}
	if *cp.ChargingMode != 1 {
		return badParam("chargeParam.chargingMode must be 1 (yearly/monthly, the only mode sold)")
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"isAutoPay", cp.IsAutoPay}, {"isAutoRenew", cp.IsAutoRenew}} {
		if f.v != nil && *f.v != 0 && *f.v != 1 {
			return badParam("chargeParam.%s must be 0 or 1", f.name)
		}
	}
	switch *cp.PeriodType {
	case 2:
		if *cp.PeriodNum < 1 || *cp.PeriodNum > 9 {
			return errCode(codeMonthRange)
		}
	case 3:
		if *cp.PeriodNum < 1 || *cp.PeriodNum > 3 {
			return errCode(codeYearRange)
		}
	default:
		return badParam("chargeParam.periodType must be 2 (month) or 3 (year)")
	}
	return nil
}

// jsonContent reports whether a request says its body is JSON; CreateInstance and DeleteInstance list
// Content-Type among their required headers.
func jsonContent(c *call) bool {
	mt, _, err := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

func (s *Server) createInstance(c *call) {
	if !jsonContent(c) {
		c.answer(nil, badParam("Content-Type must be application/json"))
		return
	}
	var req createRequest
	if e := c.decode(&req); e != nil {
		c.answer(nil, e)
		return
	}
	if e := checkCreate(&req); e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		sku, ok := s.cat.skus[req.RegionID][req.InstanceSkuID]
		if !ok {
			return nil, errCode(codeNoSku)
		}
		if req.BandSkuID != s.cat.bandSku {
			return nil, errCode(codeBandMismatch)
		}
		n := *req.Count
		if n > s.stock {
			return nil, errCode(codeNoStock)
		}
		s.stock -= n
		o := &order{id: "CS" + c.now.UTC().Format("0601021504") + s.upperAlnum(5)}
		data := createData{OrderID: o.id, InstanceInfos: make([]instanceInfo, 0, n)}
		for range n {
			p := s.newPhoneLocked(req.InstanceNamePrefix, "0", sku.id, sku.desc, req.RegionID, *req.OS, c.now)
			p.pool = s.cfg.Pools[0]
			if req.NodeGroupID != nil { // the simulator names its node groups by their ids
				p.pool = *req.NodeGroupID
			}
			o.phones = append(o.phones, p)
			data.InstanceInfos = append(data.InstanceInfos, instanceInfo{InstanceID: p.id, InstanceName: p.name})
		}
		s.orders[o.id] = o
		if req.ChargeParam.IsAutoPay != nil && *req.ChargeParam.IsAutoPay == 1 {
			s.deliverLocked(o, c.now)
		}
		return data, nil
	})
}

// deliverLocked puts a paid order's phones into the tenant's fleet.
func (s *Server) deliverLocked(o *order, now time.Time) {
	o.paid = true
	for _, p := range o.phones {
		p.created, p.backupTime, p.restoreTime = now, now, now
		s.addPhoneLocked(p)
	}
}

type deleteRequest struct {
	InstanceIDList []string `json:"instanceIdList"`
}

// deleteInstance unsubscribes yearly/monthly phones: 1012 for another tenant's, 1001 for an unknown one, 5001 for
// an on-demand one; all or nothing.
func (s *Server) deleteInstance(c *call) {
	if !jsonContent(c) {
		c.answer(nil, badParam("Content-Type must be application/json"))
		return
	}
	var req deleteRequest
	if e := c.decode(&req); e != nil {
		c.answer(nil, e)
		return
	}
	if e := checkIDs("instanceIdList", req.InstanceIDList); e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		for _, id := range req.InstanceIDList {
			p, foreign := s.phoneLocked(id, c.now)
			switch {
			case foreign:
				return nil, apiErr(codeNotTenants, "instance "+id)
			case p == nil:
				return nil, apiErr(codeNoPermission, "instance "+id+" does not exist")
			case p.billing != "0":
				return nil, apiErr(codeOnDemand, "instance "+id+" is billed on demand")
			}
		}
		gone := toSet(req.InstanceIDList)
		for id := range gone {
			delete(s.phones, id)
		}
		kept := s.fleet[:0]
		for _, id := range s.fleet {
			if !gone[id] {
				kept = append(kept, id)
			}
		}
		s.fleet = kept
		return json.RawMessage("null"), nil
	})
}

// checkCreateNewer checks the newer reference's optional fields: network EIP or ADN, customImageType 0..2,
// customImageId positive (an integer in the Java SDK), specPoolId and nodeGroupId at most 64 characters. The seed
// itself only says network is optional "e.g. EIP".
func checkCreateNewer(req *createRequest) *apiError {
	if req.Network != nil && *req.Network != "EIP" && *req.Network != "ADN" {
		return badParam("network must be EIP or ADN")
	}
	if t := req.CustomImageType; t != nil && (*t < 0 || *t > 2) {
		return badParam("customImageType must be 0 (system), 1 (custom) or 2 (private)")
	}
	if id := req.CustomImageID; id != nil && *id < 1 {
		return badParam("customImageId must be a positive integer")
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"specPoolId", req.SpecPoolID}, {"nodeGroupId", req.NodeGroupID}} {
		if f.v != nil && (*f.v == "" || len(*f.v) > 64) {
			return badParam("%s must be 1 to 64 characters", f.name)
		}
	}
	return nil
}
