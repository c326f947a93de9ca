package sim

// Message texts, in the style of real PDD/Taobao/JD customer-service chats.
// A small share carries what the text rules look for: buyers threatening a
// complaint or a bad review, agents abusing buyers, brushing them off, or
// leading them off the platform.
var (
	presaleFirst = []string{
		"在吗", "在吗?这个还有货吗", "你好,请问这款有现货吗", "这个尺寸怎么选", "能便宜点吗",
		"今天下单什么时候发货", "有优惠券吗", "这个是正品吗", "买两件能包邮吗", "这个颜色会掉色吗",
		"请问发什么快递", "桌垫有味道吗", "能开发票吗", "有没有大一号的", "拍了可以改地址吗",
	}
	presaleMore = []string{
		"好的", "那我拍了", "还有别的颜色吗", "多久能到", "能再少点吗", "是直角还是圆角",
		"可以备注吗", "我想要两个", "质量怎么样", "有赠品吗",
	}
	logisticsFirst = []string{
		"怎么还没发货", "我的快递到哪了", "什么时候能发货啊", "物流好几天没更新了",
		"能催一下快递吗", "说好48小时发货的呢", "显示已签收但我没收到",
	}
	aftersaleFirst = []string{
		"收到的桌垫有划痕", "尺寸不对,我要退货", "少发了一件", "收到的颜色和图片不一样",
		"东西坏了怎么处理", "我要退款", "质量太差了,申请退货退款", "包装破了,里面也压坏了",
	}
	aftersaleMore = []string{
		"我已经拍照了", "运费谁出", "能补发吗", "那给我补偿一点吧", "多久能退款", "我不想寄回",
	}
	// Buyer messages with complaint or bad-review intent.
	complaintFirst = []string{
		"再不处理我就投诉了", "我要给差评", "我要打12315投诉你们", "我要申请平台介入",
		"你们这是虚假宣传,我要举报", "客服一直不回,投诉!",
	}
	impatient = []string{"人呢?", "在吗?怎么不回复", "有人吗", "还在吗,等半天了", "再不回我投诉了"}
	spamFirst = []string{
		"代刷好评,需要的联系", "低价推广引流,加V详谈", "你们这什么破店", "店铺代运营了解一下",
		"骗子店铺", "专业提升店铺权重,包上首页",
	}
	thanks = []string{"好的,谢谢", "知道了,谢谢", "好的", "嗯嗯,谢谢亲", "收到"}

	agentReplies = []string{
		"亲,在的哦,请问有什么可以帮您", "亲亲,现货的哦,今天下单48小时内发货", "亲,这边给您查询一下",
		"亲,尺寸按桌面实际长宽选就可以哦", "亲,已经给您备注了", "亲,目前有满减券可以领取哦",
		"亲,默认发中通快递", "亲,我们是环保材质,打开通风一下就没味道了", "亲,可以开电子发票的",
		"亲,已经帮您催仓库了,今天一定发出", "亲,物流这边帮您跟进,有消息第一时间通知您",
		"非常抱歉给您带来不好的体验,这边马上为您处理", "亲,麻烦提供一下照片,我们给您补发",
		"亲,可以给您补偿5元,您看可以吗", "亲,退款申请已经收到,会尽快处理",
		"亲,两件包邮的哦", "亲,圆角2CM,需要直角请备注",
	}
	agentThanks = []string{"不客气哦亲~", "亲,有问题随时联系我们哦", "祝您生活愉快~", "感谢支持,欢迎下次光临"}
	agentSpam   = []string{"谢谢您的支持和信任,暂时不需要,恭喜发财", "亲,不需要哦"}
	// Agent replies the text rules must catch.
	agentPerfunctory = []string{"嗯", "哦", "。", "知道了"}
	agentAbusive     = []string{"爱买不买", "你有病吧", "就这么点钱还想买多好的", "再闹我就拉黑你"}
	agentOffPlatform = []string{"亲,加我微信给你优惠,vx: sale8888", "支付宝转账可以便宜20"}

	botGreeting = []string{
		"您好,欢迎光临本店,客服马上为您服务~", "亲,您的问题已收到,人工客服正在赶来,请稍等",
		"【自动回复】亲,现货下单48小时内发货哦",
	}
	botAfterHours  = []string{"亲,客服已下班(服务时间8:00-23:00),上班后第一时间回复您"}
	systemTransfer = "会话已转接"
)
