package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/state"
)

// OrderFigures are a shop's order figures (CONTRACT.md §6). Ratios and means
// are nil while their denominator is 0: no review is not a perfect score.
type OrderFigures struct {
	AwaitingShipment int64            `json:"orders_awaiting_shipment"`
	ShippingBreached int64            `json:"shipping_breached_orders"`
	OpenDisputes     map[string]int64 `json:"open_disputes"`
	Reviews          int64            `json:"reviews"`
	// ReviewSatisfaction is reviews rated 4–5 / reviews today.
	ReviewSatisfaction *float64 `json:"review_satisfaction,omitempty"`
	Refunds            int64    `json:"refunds_completed"`
	// AvgRefundSeconds is the mean request-to-completion time of refunds
	// completed today.
	AvgRefundSeconds *float64 `json:"avg_refund_seconds,omitempty"`
	// Converted is today's consulting buyers who paid within the
	// conversion window; InquiryConversionRate is Converted / consulting
	// buyers (询单转化率), absent while no one consulted.
	Converted             int64    `json:"converted_buyers"`
	InquiryConversionRate *float64 `json:"inquiry_conversion_rate,omitempty"`
}

// orderFigures computes the order figures from a shop's counters.
func orderFigures(f *state.ShopFigures) OrderFigures {
	o := OrderFigures{
		AwaitingShipment: max(0, f.Now[detectors.FieldAwaitingShipment]),
		ShippingBreached: f.Day[detectors.FieldShipBreached],
		OpenDisputes:     map[string]int64{},
		Reviews:          f.Day[detectors.FieldReviews],
		Refunds:          f.Day[detectors.FieldRefundN],
	}
	for _, k := range detectors.DisputeKinds {
		o.OpenDisputes[k] = max(0, f.Now[detectors.OpenDisputesField(k)])
	}
	if o.Reviews > 0 {
		v := float64(f.Day[detectors.FieldReviewsGood]) / float64(o.Reviews)
		o.ReviewSatisfaction = &v
	}
	o.AvgRefundSeconds = avgSeconds(f.Day[detectors.FieldRefundMs], o.Refunds)
	o.Converted = f.Day[detectors.FieldConverted]
	o.InquiryConversionRate = ratio(o.Converted, f.Day[detectors.FieldConsulting])
	return o
}

// orderGauges are the order gauges of CONTRACT.md §6.
type orderGauges struct {
	awaiting, breached, disputes, satisfaction, avgRefund, conversion *prometheus.GaugeVec
}

func (g *orderGauges) register(gauge func(name, help string, labels ...string) *prometheus.GaugeVec) {
	g.awaiting = gauge("replywatch_orders_awaiting_shipment", "Paid (PDD: grouped) orders not shipped or refunded.", "shop")
	g.breached = gauge("replywatch_shipping_breached_orders", "Orders whose shipping deadline passed today unshipped.", "shop")
	g.disputes = gauge("replywatch_open_disputes", "Open disputes and complaints with a respond_by.", "shop", "kind")
	g.satisfaction = gauge("replywatch_review_satisfaction", "Reviews today rated 4-5 / reviews today (absent while none).", "shop")
	g.conversion = gauge("replywatch_inquiry_conversion_rate", "Consulting buyers today who paid within orders.conversion_window / consulting buyers (absent while none).", "shop")
	g.avgRefund = gauge("replywatch_avg_refund_seconds", "Mean refund_requested to refund_completed time of refunds completed today (absent while none).", "shop")
}

func (g *orderGauges) reset() {
	for _, v := range []*prometheus.GaugeVec{g.awaiting, g.breached, g.disputes, g.satisfaction, g.avgRefund, g.conversion} {
		v.Reset()
	}
}

func (g *orderGauges) export(shop string, o OrderFigures) {
	g.awaiting.WithLabelValues(shop).Set(float64(o.AwaitingShipment))
	g.breached.WithLabelValues(shop).Set(float64(o.ShippingBreached))
	for k, v := range o.OpenDisputes {
		g.disputes.WithLabelValues(shop, k).Set(float64(v))
	}
	if o.ReviewSatisfaction != nil {
		g.satisfaction.WithLabelValues(shop).Set(*o.ReviewSatisfaction)
	}
	if o.AvgRefundSeconds != nil {
		g.avgRefund.WithLabelValues(shop).Set(*o.AvgRefundSeconds)
	}
	if o.InquiryConversionRate != nil {
		g.conversion.WithLabelValues(shop).Set(*o.InquiryConversionRate)
	}
}
