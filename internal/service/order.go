package service

import (
	"context"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// OrderService implements koophone.v1.OrderService.
type OrderService struct {
	pb.UnsafeOrderServiceServer
	base
}

// BatchShowSku returns the SKU catalogue.
func (s *OrderService) BatchShowSku(ctx context.Context, req *pb.BatchShowSkuRequest) (*pb.BatchShowSkuResponse, error) {
	skuType := req.GetType()
	if skuType == "" {
		skuType = "0" // the only type KooPhone has; the contract lets callers leave it out
	}
	res, err := s.up.BatchShowSku(ctx, skuType)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return skuCatalogue(res), nil
}

// CreateInstance orders phones. It is never retried by the gateway: a repeat could order twice.
func (s *OrderService) CreateInstance(ctx context.Context, req *pb.CreateInstanceRequest) (*pb.CreateInstanceResponse, error) {
	cp := req.GetChargeParam()
	order, err := s.up.CreateInstance(ctx, withImage(upstream.CreateInstanceRequest{
		OS:                 req.GetOs(),
		InstanceSkuID:      req.GetInstanceSkuId(),
		BandSkuID:          req.GetBandSkuId(),
		RegionID:           req.GetRegionId(),
		InstanceNamePrefix: req.GetInstanceNamePrefix(),
		BandSize:           req.GetBandSize(),
		Count:              int(req.GetCount()),
		ChargeParam: upstream.ChargeParam{
			ChargingMode: int(cp.GetChargingMode()), // the enum's numbers are KooPhone's
			PeriodType:   int(cp.GetPeriodType()),
			PeriodNum:    int(cp.GetPeriodNum()),
			IsAutoPay:    boolFlag(cp.GetIsAutoPay()),
			IsAutoRenew:  boolFlag(cp.GetIsAutoRenew()),
		},
		Network:     req.GetNetwork(),
		SpecPoolID:  req.GetSpecPoolId(),
		NodeGroupID: req.GetNodeGroupId(),
	}, req))
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &pb.CreateInstanceResponse{OrderId: order.OrderID}
	for _, info := range order.InstanceInfos {
		out.InstanceInfos = append(out.InstanceInfos, &pb.InstanceInfo{InstanceId: info.InstanceID, InstanceName: info.InstanceName})
	}
	return out, nil
}

// DeleteInstance unsubscribes yearly/monthly phones.
func (s *OrderService) DeleteInstance(ctx context.Context, req *pb.DeleteInstanceRequest) (*pb.DeleteInstanceResponse, error) {
	if err := s.up.DeleteInstance(ctx, upstream.DeleteInstanceRequest{InstanceIDList: req.GetInstanceIds()}); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &pb.DeleteInstanceResponse{}, nil
}

// withImage adds the newer reference's image fields to an order, each only when set: the contract's
// CustomImageType numbers are KooPhone's, and an absent field is not sent.
func withImage(out upstream.CreateInstanceRequest, req *pb.CreateInstanceRequest) upstream.CreateInstanceRequest {
	if req.CustomImageType != nil {
		v := int(req.GetCustomImageType())
		out.CustomImageType = &v
	}
	if id := req.GetCustomImageId(); id != 0 {
		v := int(id)
		out.CustomImageID = &v
	}
	return out
}
