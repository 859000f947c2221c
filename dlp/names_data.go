package dlp

import "strings"

// givenNames are common US given names (SSA popular names, several
// decades), lower-cased.
var givenNames = strings.Fields(`
james john robert michael william david richard joseph thomas charles christopher daniel matthew anthony mark
donald steven paul andrew joshua kenneth kevin brian george timothy ronald edward jason jeffrey ryan jacob gary
nicholas eric jonathan stephen larry justin scott brandon benjamin samuel gregory alexander frank patrick raymond
jack dennis jerry tyler aaron jose adam nathan henry douglas zachary peter kyle ethan walter noah jeremy christian
keith roger terry gerald harold sean austin carl arthur lawrence dylan jesse jordan bryan billy joe bruce gabriel
logan albert willie alan juan wayne elijah randy roy vincent ralph eugene russell bobby mason philip louis liam
mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy betty margaret sandra ashley
kimberly emily donna michelle carol amanda dorothy melissa deborah stephanie rebecca sharon laura cynthia kathleen
amy angela shirley anna brenda pamela emma nicole helen samantha katherine christine debra rachel carolyn janet
catherine maria heather diane ruth julie olivia joyce virginia victoria kelly lauren christina joan evelyn judith
megan andrea cheryl hannah jacqueline martha gloria teresa ann sara madison frances kathryn janice jean abigail
alice judy sophia grace denise amber doris marilyn danielle beverly isabella theresa diana natalie brittany charlotte
marie kayla alexis lori ava mia ella chloe zoe lily wei li ming hui jun ling yan fang hong
`)

// surnamesEN are common US surnames (Census 2010), lower-cased.
var surnamesEN = strings.Fields(`
smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez wilson anderson
thomas taylor moore jackson martin lee perez thompson white harris sanchez clark ramirez lewis robinson walker young
allen king wright scott torres nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter
roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers
gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez
wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez
powell jenkins perry russell sullivan bell coleman butler henderson barnes gonzales fisher vasquez simmons romero
jordan patterson alexander hamilton graham reynolds griffin wallace moreno west cole hayes bryant herrera gibson
ellis tran medina aguilar stevens murray ford castro marshall owens harrison fernandez mcdonald woods washington
kennedy wells vargas henry chen freeman webb tucker guzman burns crawford olson simpson porter hunter gordon mendez
silva shaw snyder mason dixon munoz hunt hicks holmes palmer wagner black robertson boyd rose stone salazar fox
warren mills meyer rice schmidt garza daniels ferguson nichols stephens soto weaver ryan gardner payne grant dunn
wang zhang liu zhao huang zhou wu xu sun zhu ma hu guo lin he gao luo zheng liang xie song tang
`)

// stopWords are capitalised words that end a run of name tokens.
var stopWords = strings.Fields(`
the a an he she his her they their it its this that these those is was are were has had have be been on at in
of for with and or to from by no not yes name information portal id number record records status history
education instructions care services service center centre hospital clinic department unit room ward visit
reports presents denies states admitted discharged seen today tomorrow yesterday monday tuesday wednesday
thursday friday saturday sunday dob ssn mrn phone email address lab labs diagnosis plan assessment note notes
follow emergency primary medical health insurance contact patient family street avenue road team group
amount payment charge code indicator deductible coinsurance allowed submitted processing line type category
class summary report panel result results test score procedure encounter claim benefit coverage identifier
safety level system coordinate medicine change types resource context launch signal weighted data record
records access list lists group groups
`)

// streetSuffixes are USPS Publication 28 street suffixes (common ones).
var streetSuffixes = strings.Fields(`
street st avenue ave av road rd boulevard blvd lane ln drive dr court ct place pl way terrace ter parkway pkwy
highway hwy circle cir square sq trail trl alley aly plaza plz loop path pike crescent row expressway expy
freeway fwy turnpike tpke
`)

// usStates are USPS state and territory codes.
var usStates = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Fields(`AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO
MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP`) {
		m[s] = true
	}
	return m
}()

// zhSurnames are the single-character surnames of the Hundred Family
// Surnames (百家姓) and other common modern ones.
const zhSurnames = `赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜戚谢邹喻柏水窦章云苏潘葛奚范彭郎` +
	`鲁韦昌马苗凤花方俞任袁柳酆鲍史唐费廉岑薛雷贺倪汤滕殷罗毕郝邬安常乐于时傅皮卞齐康伍余元卜顾孟平黄和` +
	`穆萧尹姚邵湛汪祁毛禹狄米贝明臧计伏成戴谈宋茅庞熊纪舒屈项祝董梁杜阮蓝闵席季麻强贾路娄危江童颜郭梅盛林` +
	`刁钟徐邱骆高夏蔡田樊胡凌霍虞万支柯昝管卢莫经房裘缪干解应宗丁宣贲邓郁单杭洪包诸左石崔吉钮龚程嵇邢滑裴` +
	`陆荣翁荀羊於惠甄曲家封芮羿储靳汲邴糜松井段富巫乌焦巴弓牧隗山谷车侯宓蓬全郗班仰秋仲伊宫宁仇栾暴甘钭厉` +
	`戎祖武符刘景詹束龙叶幸司韶郜黎蓟薄印宿白怀蒲邰从鄂索咸籍赖卓蔺屠蒙池乔阴郁胥能苍双闻莘党翟谭贡劳逄姬` +
	`申扶堵冉宰郦雍却璩桑桂濮牛寿通边扈燕冀郏浦尚农温别庄晏柴瞿阎充慕连茹习宦艾鱼容向古易慎戈廖庾终暨居衡` +
	`步都耿满弘匡国文寇广禄阙东殴殳沃利蔚越夔隆师巩厍聂晁勾敖融冷訾辛阚那简饶空曾毋沙乜养鞠须丰巢关蒯相查` +
	`后荆红游竺权逯盖益桓公晋楚闫法汝鄢涂钦岳帅缑亢况郈有琴商牟佘佴伯赏墨哈谯笪年爱阳佟言福覃付肖欧` +
	// Traditional forms (Hong Kong, Macao, Taiwan records).
	`趙錢孫吳鄭馮陳衛蔣韓楊許呂張華薑謝鄒蘇範魯韋馬鳳鮑費賀湯羅畢鄔顧黃蕭貝龐紀項藍閔賈婁顏郭鍾駱萬盧繆鄧單龔` +
	`陸榮儲靳烏寧欒厲劉龍葉懷賴藺喬蒼雙聞黨譚勞壽邊溫莊閻連魚廖滿國廣祿闕歐鞏聶闞簡饒養豐關權蓋閆`

// zhCompoundSurnames are two-character surnames.
var zhCompoundSurnames = strings.Fields(`万俟 司马 上官 欧阳 夏侯 诸葛 闻人 东方 赫连 皇甫 尉迟 公羊 澹台 公冶 宗政 濮阳 淳于
单于 太叔 申屠 公孙 仲孙 轩辕 令狐 钟离 宇文 长孙 慕容 鲜于 闾丘 司徒 司空 亓官 司寇 子车 颛孙 端木 巫马 公西 漆雕 乐正
壤驷 公良 拓跋 夹谷 宰父 谷梁 段干 百里 东郭 南门 呼延 羊舌 微生 梁丘 左丘 东门 西门 南宫 第五
歐陽 司馬 諸葛 上官 司徒 夏侯 皇甫 東方 令狐 長孫 鍾離 宇文 慕容 尉遲 軒轅`)

// zhCommonSurnames are the most frequent surnames that are rarely ordinary
// words: only these start a name with no context word before it.
const zhCommonSurnames = `王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁` +
	`任沈姚卢姜崔钟谭陆汪范廖贾夏韦付邹孟熊秦邱江尹薛闫段雷侯黎贺顾毛郝龚邵钱严覃戴莫孔汤` +
	`陳張劉楊黃趙吳孫馬鄭羅謝許韓馮鄧蕭袁蔣蘇魏呂盧鍾譚陸賈韋鄒閆賀顧龔錢嚴湯`

// zhNotNames are words that begin with a common surname but are not names.
var zhNotNames = strings.Fields(`黄疸 黄色 黄体 黄芪 黄连 黄斑 刘海 陈旧 陈述 张力 张开 孙子 孙女 马上 马桶 朱砂 胡须 胡椒
郭公 何时 何处 林业 罗列 郑重 梁上 谢谢 宋体 唐氏 许多 许可 韩国 冯氏 曹操 彭大 曾经 曾有 田间 董事 袁氏 潘氏 蒋氏 蔡氏
余量 余下 杜绝 叶酸 叶片 程度 程序 苏醒 魏氏 吕氏 丁香 任何 任务 沈默 姚氏 卢氏 姜黄 崔氏 钟点 钟表 谭氏 陆续 汪洋 范围 范例
廖氏 贾氏 夏季 夏天 韦氏 付款 付费 邹氏 孟氏 熊猫 秦氏 邱氏 江河 尹氏 薛氏 闫氏 段落 雷达 侯氏 黎明 贺卡 顾虑 顾客 毛发 毛囊
毛细 郝氏 龚氏 邵氏 钱币 严重 严格 严密 覃氏 戴上 戴着 莫名 孔洞 孔径 汤剂 汤药 周围 周期 周身 周边 周岁 王者 李子 张口 杨梅
徐缓 朱红 胡言 江湖 林中 陈皮 吴茱
杜冷丁 潘生丁 何首乌 雷公藤 胡萝卜 胡桃 黄连素 马来酸 马兜铃 罗氏 叶黄素 田七 许可证 孙思邈`)

// zhNameStop are characters that end a name: function words, verbs and
// nouns that follow names in clinical notes.
const zhNameStop = `于因在的了是为入出来去今昨近自主诉经从到已未无有和与及等现既曾前后时年日岁男女性说称被将把对向` +
	`由以而并且也都又还再就才便即则之所其此该本各每某何谁哪这那个位名次周住院诊科病症痛血检查术药服用量例患者` +
	`医生护士家属电话号码地址址女士主任，。、；：（）` +
	`於為來診醫護屬電話號碼無與從經現歲說稱對這個將該術藥檢查`

// zhTitles follow a surname or full name: 李先生, 王医生.
var zhTitles = strings.Fields(`先生 女士 小姐 医生 医师 护士 老师 教授 主任 大夫 同志 阿姨 师傅 醫生 醫師 護士 老師 師傅`)

// provinceNames and major cities start an address without a context word.
var zhPlaceStarts = strings.Fields(`北京 天津 河北 山西 内蒙古 辽宁 吉林 黑龙江 上海 江苏 浙江 安徽 福建 江西 山东 河南 湖北 湖南
广东 广西 海南 重庆 四川 贵州 云南 西藏 陕西 甘肃 青海 宁夏 新疆 台湾 香港 澳门 广州 深圳 杭州 南京 武汉 成都 西安 沈阳
长沙 郑州 济南 青岛 大连 厦门 苏州 宁波 无锡 福州 合肥 南昌 昆明 贵阳 南宁 海口 兰州 银川 西宁 乌鲁木齐 拉萨 呼和浩特
哈尔滨 长春 石家庄 太原 东莞 佛山 珠海 温州 绍兴 烟台 潍坊 徐州 常州 南通 泉州
臺灣 台灣 臺北 台北 新北 桃園 臺中 台中 臺南 台南 高雄 澳門 廣州 廣東 廣西 遼寧 黑龍江 陝西 寧夏 新疆 雲南 貴州 內蒙古 蘇州 無錫`)
